"""Routing TOML and environment settings: defaults, valid files, errors naming key and problem."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, load_routes, load_settings, log_level, parse_routes
from bot.domain.failure_classes import FailureClass, FailureRule
from bot.domain.route import Route


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "routes.toml"
    path.write_text(text)
    return str(path)


def test_defaults_without_a_file() -> None:
    (route,) = load_routes(None)
    assert route == Route()
    assert (route.name, route.repo, route.branch) == ("inductor", "pytorch/pytorch", "main")
    assert route.threshold == 3 and route.max_age == timedelta(hours=24)
    assert (route.team, route.priority) == ("broken-inductor", "P2")
    assert route.watches_job("inductor", "cuda12.8 / test (inductor_timm, 1, 2, linux.g5)")
    assert route.watches_job("inductor-periodic", "cuda12.8 / test (dynamo_eager)")
    assert not route.watches_job("pull", "linux-jammy / test (default, 1, 5, linux.2xlarge)")
    for excluded in ("unstable", "rerun_disabled_tests", "mem_leak_check"):
        assert not route.watches_job("inductor", f"cuda12.8 / test (x, 1, 2, linux.g5, {excluded})")


def test_default_route_takes_the_default_channel() -> None:
    (route,) = load_routes(None, default_channel="C123")
    assert route.channel == "C123"


def test_settings_from_environment_without_config() -> None:
    settings = load_settings({"PORT": "8080", "SCHEDULER_ENABLED": "no"})
    assert settings.port == 8080 and settings.scheduler_enabled is False
    assert settings.routes == (Route(),)


def test_settings_load_routes_from_bot_config(tmp_path: Path) -> None:
    path = write(tmp_path, '[[routes]]\nname = "rocm"\nworkflows = "^rocm"\n')
    settings = load_settings({"BOT_CONFIG": path, "SLACK_CHANNEL": "C9"})
    assert [(r.name, r.workflows, r.channel) for r in settings.routes] == [("rocm", "^rocm", "C9")]


def test_valid_file_with_defaults_and_two_routes(tmp_path: Path) -> None:
    path = write(tmp_path, """
[defaults]
repo = "pytorch/pytorch"
threshold = 2
max_age = "12h"
oncall = ["U012ABCDEF"]

[[routes]]
name = "inductor"
workflows = "^inductor"
priority = "p1"
channel = "C0INDUCTOR"

[[routes]]
name = "rocm"
workflows = "^rocm"
threshold = 4
max_age = 3600
exclude = ""
owners = "S0ROCMTEAM"
bisect = { max_runs = 4 }
""")
    inductor, rocm = load_routes(path)
    assert inductor.threshold == 2 and inductor.max_age == timedelta(hours=12)
    assert inductor.priority == "P1" and inductor.channel == "C0INDUCTOR"
    assert inductor.oncall == ("U012ABCDEF",)
    assert rocm.threshold == 4 and rocm.max_age == timedelta(hours=1)
    assert rocm.owners == ("S0ROCMTEAM",) and rocm.bisect == {"max_runs": 4}
    assert rocm.watches_job("rocm", "linux / test (default, 1, 2, linux.rocm.gpu, unstable)")
    assert rocm.team == "broken-inductor"  # untouched keys keep the built-in defaults


def test_file_with_only_defaults_yields_one_route(tmp_path: Path) -> None:
    (route,) = load_routes(write(tmp_path, '[defaults]\nteam = "compiler"\n'))
    assert route.team == "compiler" and route.name == "inductor"


@pytest.mark.parametrize(
    ("toml", "key", "problem"),
    [
        ('colour = "red"\n', "colour", "unknown top-level key"),
        ('defaults = 3\n', "defaults", "expected a table"),
        ("routes = []\n", "routes", "at least one"),
        ('routes = ["x"]\n', "routes[0]", "expected a table"),
        ('[[routes]]\nchanel = "C1"\n', "routes[0].chanel", "unknown key"),
        ("[[routes]]\nthreshold = 0\n", "routes[0].threshold", "positive integer"),
        ('[[routes]]\nthreshold = "3"\n', "routes[0].threshold", "positive integer"),
        ("[[routes]]\nthreshold = true\n", "routes[0].threshold", "positive integer"),
        ('[[routes]]\nmax_age = "soon"\n', "routes[0].max_age", "not a duration"),
        ("[[routes]]\nmax_age = -5\n", "routes[0].max_age", "expected a duration"),
        ('[[routes]]\nremind_every = "0m"\n', "routes[0].remind_every", "not a positive"),
        ('[[routes]]\nworkflows = "^(inductor"\n', "routes[0].workflows",
         "invalid regular expression"),
        ('[[routes]]\nexclude = "["\n', "routes[0].exclude", "invalid regular expression"),
        ('[[routes]]\npriority = "urgent"\n', "routes[0].priority", "P0, P1, P2 or P3"),
        ('[[routes]]\nrepo = "pytorch"\n', "routes[0].repo", "owner/name"),
        ("[[routes]]\nteam = 7\n", "routes[0].team", "expected a string"),
        ('[[routes]]\noncall = ["alice"]\n', "routes[0].oncall", "not a Slack user"),
        ("[[routes]]\nowners = [1]\n", "routes[0].owners", "list of Slack"),
        ('[[routes]]\nbisect = "yes"\n', "routes[0].bisect", "expected a table"),
        ('[[routes]]\nnotify = "loud"\n', "routes[0].notify.default", "open, escalation, never"),
        ('[[routes]]\nnotify = { P5 = "open" }\n', "routes[0].notify.P5", "P0, P1, P2 or P3"),
        ('[[routes]]\nnotify = { P1 = "page" }\n', "routes[0].notify.P1", "got 'page'"),
        ("[[routes]]\nnotify = 3\n", "routes[0].notify", "or a table of them"),
        ('[[routes]]\nname = "a"\n[[routes]]\nname = "b"\nthreshold = 0\n',
         "routes[1].threshold", "positive integer"),
        ('[[routes]]\nname = "a"\n[[routes]]\nname = "a"\n', "routes", "unique"),
        ('[defaults]\npriority = "P9"\n[[routes]]\nname = "a"\n', "routes[0].priority",
         "P0, P1, P2 or P3"),
        ('[[routes]]\ncode_area = "torch/**"\n', "routes[0].code_area", "list of strings"),
        ('[[routes]]\nflaky_tests = ["("]\n', "routes[0].flaky_tests",
         "invalid regular expression"),
        ('[[routes]]\ninfra_failures_alert = "yes"\n', "routes[0].infra_failures_alert",
         "true or false"),
        ('[[routes]]\nauto_retry = 1\n', "routes[0].auto_retry", "true or false"),
        ('[[routes]]\nauto_retry_budget = 0\n', "routes[0].auto_retry_budget",
         "positive integer"),
        ('[[routes]]\nfailure_rules = "disk"\n', "routes[0].failure_rules", "list of tables"),
        ('[[routes]]\nfailure_rules = [{pattern = "x"}]\n', "routes[0].failure_rules[0].name",
         "non-empty"),
        ('[[routes]]\nfailure_rules = [{name = "a", pattern = "("}]\n',
         "routes[0].failure_rules[0].pattern", "invalid regular expression"),
        ('[[routes]]\nfailure_rules = [{name = "a", pattern = "x", class = "flaky"}]\n',
         "routes[0].failure_rules[0].class", "infra, build, test"),
        ('[[routes]]\nfailure_rules = [{name = "a", pattern = "x", why = "?"}]\n',
         "routes[0].failure_rules[0]", "unknown key"),
    ],
)
def test_invalid_file_names_key_and_problem(tmp_path: Path, toml: str, key: str,
                                            problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_routes(write(tmp_path, toml))
    message = str(caught.value)
    assert key in message and problem in message, message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"BOT_CONFIG: file .*nope\.toml does not exist"):
        load_routes(str(tmp_path / "nope.toml"))


def test_broken_toml_is_reported_with_its_location(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"BOT_CONFIG: .* is not valid TOML: .*line 2"):
        load_routes(write(tmp_path, '[[routes]]\nname = "unterminated\n'))


def test_invalid_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"PORT: expected an integer, got 'eighty'"):
        load_settings({"PORT": "eighty"})


def test_invalid_routes_fail_settings_at_start(tmp_path: Path) -> None:
    path = write(tmp_path, "[[routes]]\nthreshold = -1\n")
    with pytest.raises(ConfigError, match=r"routes\[0\]\.threshold"):
        load_settings({"BOT_CONFIG": path})


def test_evidence_settings_of_a_route(tmp_path: Path) -> None:
    (route,) = load_routes(write(tmp_path, """
[[routes]]
code_area = ["torch/_inductor/**", "test/inductor/**"]
flaky_tests = ["test_cudagraph_.*"]
infra_failures_alert = true
auto_retry = true
auto_retry_budget = 4
failure_rules = [
  { name = "GPU out of memory", pattern = "CUDA out of memory" },
  { name = "our accuracy", pattern = "accuracy regressed", class = "test" },
]
"""))
    assert route.code_area == ("torch/_inductor/**", "test/inductor/**")
    assert route.flaky_tests == ("test_cudagraph_.*",)
    assert route.infra_failures_alert is True
    assert route.auto_retry is True and route.auto_retry_budget == 4
    assert route.failure_rules == (FailureRule("GPU out of memory", "CUDA out of memory"),
                                   FailureRule("our accuracy", "accuracy regressed",
                                               FailureClass.TEST))
    default = Route()
    assert default.code_area == ("torch/_inductor/**",) and not default.infra_failures_alert
    assert not default.auto_retry and default.auto_retry_budget == 10


def test_parse_routes_accepts_plain_mappings() -> None:
    (route,) = parse_routes({"routes": [{"name": "x", "remind_limit": 5}]})
    assert route.name == "x" and route.remind_limit == 5


@pytest.mark.parametrize(("env", "needles"), [
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": ""},
     ["SLACK_SIGNING_SECRET is empty", "Basic Information", "SLACK_APP_TOKEN"]),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "  "}, ["is empty"]),
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, ["SLACK_SIGNING_SECRET is not set"]),
    ({"SLACK_APP_TOKEN": "xapp-1"}, ["SLACK_BOT_TOKEN is not", "console mode"]),
    ({"SLACK_APP_TOKEN": "xoxb-wrong", "SLACK_BOT_TOKEN": "xoxb-1"}, ["xapp-"]),
])
def test_slack_settings_that_only_work_together(env: dict[str, str],
                                                needles: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    for needle in needles:
        assert needle in str(caught.value)
    assert "xoxb-1" not in str(caught.value) and "xoxb-wrong" not in str(caught.value)


@pytest.mark.parametrize("env", [
    {},
    {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"},
    {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"},
])
def test_slack_settings_that_work(env: dict[str, str]) -> None:
    assert load_settings(env).slack_bot_token == env.get("SLACK_BOT_TOKEN")


@pytest.mark.parametrize(("raw", "level"), [(None, 20), ("debug", 10), (" Warn ", 30),
                                            ("ERROR", 40)])
def test_log_level(raw: str | None, level: int) -> None:
    assert log_level({} if raw is None else {"LOG_LEVEL": raw}) == level


@pytest.mark.parametrize("raw", ["verbose", "5", "info,debug"])
def test_invalid_log_level_names_the_variable_and_the_choices(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"^LOG_LEVEL: .* is not a log level; use one of DEBUG"):
        log_level({"LOG_LEVEL": raw})


def test_notify_policy_as_a_word_or_by_priority() -> None:
    (plain,) = parse_routes({"routes": [{"notify": "escalation"}]})
    assert plain.notify == {"default": "escalation"}
    (table,) = parse_routes({"routes": [{"notify": {"default": "never", "P0": "open"}}]})
    assert table.notify == {"default": "never", "P0": "open"}
    (unset,) = parse_routes({"routes": [{}]})
    assert unset.notify == {}
