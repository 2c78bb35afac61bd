"""The slash command grammar: every sub-command, every bad input, and what the answer quotes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.triage import SnoozeSpec
from bot.slack.command_text import USAGE, Command, UsageError, help_text, parse_command
from bot.slack.mrkdwn import escape

NAME = "/inductor"


def ok(text: str, name: str = NAME) -> Command:
    parsed = parse_command(name, text)
    assert isinstance(parsed, Command), parsed
    return parsed


def bad(text: str, name: str = NAME) -> str:
    parsed = parse_command(name, text)
    assert isinstance(parsed, UsageError), parsed
    return parsed.message


@pytest.mark.parametrize(("text", "expected"), [
    ("", Command(verb="help")),
    ("help", Command(verb="help")),
    ("HELP me please", Command(verb="help")),
    ("list", Command(verb="list")),
    ("list all", Command(verb="list", all=True)),
    ("show A12", Command(verb="show", alert_id=12)),
    ("show 12", Command(verb="show", alert_id=12)),
    ("ack", Command(verb="ack")),
    ("ack a7", Command(verb="ack", alert_id=7)),
    ("acknowledge A7", Command(verb="ack", alert_id=7)),
    ("unack A7", Command(verb="unack", alert_id=7)),
    ("unsnooze", Command(verb="unsnooze")),
    ("assign me", Command(verb="assign", user="me")),
    ("assign A3 <@U123ABC|bob>", Command(verb="assign", alert_id=3, user="U123ABC")),
    ("assign <@W999>", Command(verb="assign", user="W999")),
    ("snooze 2h", Command(verb="snooze", snooze=SnoozeSpec("duration", timedelta(hours=2)))),
    ("snooze A4 30m", Command(verb="snooze", alert_id=4,
                              snooze=SnoozeSpec("duration", timedelta(minutes=30)))),
    ("snooze green", Command(verb="snooze", snooze=SnoozeSpec("green"))),
    ("snooze A4 until 1a2b3c4d", Command(verb="snooze", alert_id=4,
                                         snooze=SnoozeSpec("sha", sha="1a2b3c4d"))),
    ("resolve", Command(verb="resolve")),
    ("resolve A5 reverted in  #123", Command(verb="resolve", alert_id=5,
                                             reason="reverted in #123")),
    ("resolve infra flake", Command(verb="resolve", reason="infra flake")),
    ("retry", Command(verb="retry")),
    ("retry A6", Command(verb="retry", alert_id=6)),
    ("bisect", Command(verb="bisect")),
    ("bisect A6 inductor / test (inductor_timm)",
     Command(verb="bisect", alert_id=6, job="inductor / test (inductor_timm)")),
])
def test_well_formed_commands(text: str, expected: Command) -> None:
    assert ok(text) == expected


@pytest.mark.parametrize(("text", "problem", "usage"), [
    ("frobnicate A1", "Unknown sub-command `frobnicate`", None),
    ("list mine", "`list` takes nothing or `all`", "list [all]"),
    ("show", "`show` needs an alert id", "show ID"),
    ("show A1 now", "Unexpected `now` after the alert id", "show ID"),
    ("ack A1 please", "`ack` takes only an alert id, not `please`", "ack [ID]"),
    ("unack twice", "`unack` takes only an alert id, not `twice`", "unack [ID]"),
    ("assign", "exactly one person", "assign [ID] @user|me"),
    ("assign A1 @bob", "`@bob` is not a Slack user", "assign [ID] @user|me"),
    ("assign A1 <#C123|general>", "is not a Slack user", "assign [ID] @user|me"),
    ("assign A1 <@U1> <@U2>", "exactly one person", "assign [ID] @user|me"),
    ("snooze", "Say how long to snooze", "snooze [ID] 2h|30m|1d|green|until SHA"),
    ("snooze A1 2x", "'2x' is not a duration", "snooze [ID]"),
    ("snooze A1 until", "one commit sha", "snooze [ID]"),
    ("snooze A1 until main", "is not a commit sha", "snooze [ID]"),
    ("snooze 3w", "longer than the longest snooze", "snooze [ID]"),
    ("resolve A1 " + "x" * 501, "at most 500", "resolve [ID] [reason]"),
])
def test_bad_commands_say_what_quote_input_and_show_usage(text: str, problem: str,
                                                           usage: str | None) -> None:
    message = bad(text)
    assert problem in message
    assert f"You typed: `{NAME} {escape(text)}`" in message
    if usage is not None:
        assert f"Usage: `{NAME} {usage}" in message
    else:
        assert all(f"`{NAME} {line}`" in message for line, _ in USAGE.values())


def test_the_command_name_is_whatever_slack_sends() -> None:
    assert ok("ack A1", name="/ci") == Command(verb="ack", alert_id=1)
    assert "Usage: `/ci show ID`" in bad("show", name="/ci")
    assert "`/ci snooze [ID]" in help_text("/ci")


def test_quoted_input_cannot_ping_or_break_out_of_code() -> None:
    message = bad("nope <!channel> `x` & <@U1>")
    assert "<!channel>" not in message and "&lt;!channel&gt;" in message
    assert "&amp;" in message and "`x`" not in message
    assert "<@U1>" not in message


def test_help_lists_every_sub_command() -> None:
    text = help_text(NAME)
    for usage, _ in USAGE.values():
        assert f"`{NAME} {usage}`" in text
    assert "leave it out when exactly one alert" in text
