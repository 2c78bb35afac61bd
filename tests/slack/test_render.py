"""Slack rendering: safe mrkdwn, the alert message within Block Kit limits, quiet thread replies."""

from __future__ import annotations

import re
from collections.abc import Iterator, Set
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.mrkdwn import code_line, date, escape, link, mention, truncate
from bot.slack.render import (
    alert_title,
    bisect_rounds,
    render_alert_summary,
    render_event,
    render_parent,
)
from bot.slack.view import (
    AlertView,
    CommitView,
    EventKind,
    EventView,
    ExternalAlertView,
    FailedRunView,
    JobView,
)
from tests.fakes.slack_api import block_problems

T0 = datetime(2024, 12, 9, 17, 29, tzinfo=UTC)
HOSTILE = "<!channel> <@U123> & <https://evil.example|click> `tick` *bold*"

# Every legitimate <...> token the renderer may emit; anything else with < or > is a leak.
_TOKEN = re.compile(
    r"<(?:https?://[^\s<>|]+\|[^<>|]*"
    r"|!date\^\d+\^\{date_short_pretty\} \{time\}\|[^<>|]*"
    r"|@[UW][A-Z0-9]+"
    r"|!subteam\^S[A-Z0-9]+)>"
)


def job(key: str = "inductor / test (inductor_huggingface)", streak: int = 3, **kw: Any) -> JobView:
    fields: dict[str, Any] = {
        "key": key,
        "streak": streak,
        "newest_failing_sha": "d" * 40,
        "first_failing_sha": "c" * 40,
    }
    return JobView(**(fields | kw))


def alert(**kw: Any) -> AlertView:
    fields: dict[str, Any] = {
        "id": 42,
        "short_id": "a1b2",
        "repo": "pytorch/pytorch",
        "branch": "main",
        "route": "inductor",
        "team": "broken-inductor",
        "priority": "P2",
        "state": "open",
        "opened_at": T0,
        "jobs": (job(), job("inductor / test (dynamic)", 5)),
    }
    return AlertView(**(fields | kw))


def grafana(**kw: Any) -> ExternalAlertView:
    fields: dict[str, Any] = {
        "title": "Inductor jobs failing for three commits in a row on Trunk",
        "status": "firing",
        "priority": "P2",
        "team": "broken-inductor",
        "reason": "Failure_Threshold=1, Number_of_Jobs_Failing=1",
        "links": {
            "generator": "https://grafana.example/alerting/grafana/abc/view",
            "dashboard": "https://grafana.example/d/xyz",
            "silence": "https://grafana.example/alerting/silence/new?a=1&b=2",
            "runbook": "https://runbook.example/inductor",
        },
        "occurred_at": T0,
    }
    return ExternalAlertView(**(fields | kw))


def strings(node: Any) -> Iterator[str]:
    """Every string anywhere in a JSON-shaped structure."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from strings(value)


def assert_no_leaks(text: str, allowed_mentions: Set[str] = frozenset()) -> None:
    """No <...> but the renderer's own tokens; user mentions only of the allowed ids."""
    leftover = _TOKEN.sub("", text)
    assert "<" not in leftover and ">" not in leftover, text
    assert "<!channel>" not in text and "<!here>" not in text and "<@U123>" not in text
    assert set(re.findall(r"<@([UW][A-Z0-9]+)>", text)) <= allowed_mentions, text


def all_text(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(strings(blocks))


# ----------------------------------------------------------------------- mrkdwn


def test_escape_neutralises_control_characters() -> None:
    assert escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert escape("&lt;") == "&amp;lt;"  # already-escaped-looking text stays literal


def test_link_escapes_label_and_encodes_url() -> None:
    assert link("https://x.example/a?b=1&c=2", "a|b>c&d") == (
        "<https://x.example/a?b=1&amp;c=2|a¦b&gt;c&amp;d>"
    )
    assert link("https://x.example/a|b>c", "log") == "<https://x.example/a%7Cb%3Ec|log>"


@pytest.mark.parametrize("url", ["!channel", "@U123", "javascript:alert(1)", "", None])
def test_link_refuses_unsafe_urls(url: str | None) -> None:
    assert link(url, "<label>") == "&lt;label&gt;"


def test_truncate_never_splits_an_entity() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("abcdefghij", 5) == "abcd…"
    assert truncate("ab&amp;cdef", 6) == "ab…"
    assert truncate("abc", 0) == ""


def test_code_line_is_one_clean_line() -> None:
    raw = "\n  \x1b[31mRuntimeError:\tbad `x` <!here>\x00\x1b[0m\nnext line"
    assert code_line(raw) == "`RuntimeError: bad ˋxˋ &lt;!here&gt;`"
    assert code_line(" \n\t ") == ""
    assert len(code_line("e" * 5000, limit=200)) == 202


def test_mention_only_for_real_id_shapes() -> None:
    assert mention("U0123ABC") == "<@U0123ABC>"
    assert mention("W1") == "<@W1>"
    assert mention("S2") == "<!subteam^S2>"
    assert mention("!channel") == "!channel"
    assert mention("U1> <!channel") == "U1&gt; &lt;!channel"


def test_date_token_has_utc_fallback() -> None:
    assert date(T0) == "<!date^1733765340^{date_short_pretty} {time}|2024-12-09 17:29 UTC>"
    assert date(T0.replace(tzinfo=None)) == date(T0)


@settings(max_examples=150, deadline=None)
@given(st.text(), st.text())
def test_any_text_stays_inert(label: str, line: str) -> None:
    assert "<" not in escape(label) and ">" not in escape(label)
    linked = link("https://x.example/p", label)
    assert linked.count("<") == 1 and linked.count(">") == 1 and linked.count("|") == 1
    code = code_line(line)
    assert code == "" or (code.count("`") == 2 and "\n" not in code and "<" not in code)


# ------------------------------------------------------------------ parent title


def test_title_counts_failing_jobs_and_their_shortest_streak() -> None:
    view = alert(jobs=(job(streak=3), job("b", 5), job("c", 9, recovered=True)))
    assert alert_title(view) == (
        "[P2] broken-inductor: 2 Inductor jobs failing for 3+ commits on trunk"
    )
    assert "1 Inductor job failing for 4+" in alert_title(alert(jobs=(job(streak=4),)))
    assert "on release/2.6" in alert_title(alert(branch="release/2.6"))
    assert "Inductor-periodic" in alert_title(alert(route="inductor-periodic"))


def test_escalation_raises_shown_priority_one_step() -> None:
    assert alert_title(alert(escalated=True)).startswith("[P1↑] ")
    assert alert_title(alert(priority="P0", escalated=True)).startswith("[P0] ")
    text, blocks = render_parent(alert(escalated=True))
    assert "escalated from P2" in blocks[0]["text"]["text"]


@pytest.mark.parametrize("taken", [
    {"state": "acknowledged", "acked_by": "U1"},
    {"state": "assigned", "assignee": "U2"},
    {"state": "snoozed", "acked_by": "U1", "snooze_reason": "until green"},
    {"state": "bisecting", "bisect_status": "round 1"},
    {"state": "resolved", "resolved_at": T0 + timedelta(hours=3)},
])
def test_escalation_marker_only_while_nobody_has_taken_the_alert(taken: dict[str, Any]) -> None:
    view = alert(escalated=True, **taken)
    assert alert_title(view).startswith("[P2] ")
    text, blocks = render_parent(view)
    assert "escalated" not in blocks[0]["text"]["text"] and "↑" not in text


def test_status_line_shows_state_owner_and_snooze_together() -> None:
    until = T0 + timedelta(hours=2)
    snoozed = alert(state="snoozed", assignee="U2", acked_by="U1", snoozed_until=until)
    status = render_parent(snoozed)[1][0]["text"]["text"].split("\n")[1]
    assert status == (f":zzz: *Snoozed* until {date(until)} · assigned to <@U2> · "
                      "acknowledged by <@U1>")
    bisecting = alert(state="bisecting", bisect_status="round 1", acked_by="U1",
                      snooze_reason="until green")
    status = render_parent(bisecting)[1][0]["text"]["text"].split("\n")[1]
    assert status == (":mag: *Bisecting*: round 1 · acknowledged by <@U1> · "
                      "snoozed until green")
    assert render_parent(alert(state="assigned", assignee="U2"))[1][0]["text"]["text"] \
        .endswith(":bust_in_silhouette: *Assigned* to <@U2>")
    assert render_parent(alert())[1][0]["text"]["text"].endswith(
        ":red_circle: *Open* · nobody on it yet")


def test_fallback_text_is_the_escaped_title_without_mentions() -> None:
    view = alert(team="<!channel> & co", acked_by="U9", state="acknowledged")
    text, _ = render_parent(view)
    assert text == "[P2] &lt;!channel&gt; &amp; co: 2 Inductor jobs failing for 3+ commits on trunk"


# ----------------------------------------------------------------- parent body


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ":red_circle: *Open*"),
        ({"state": "acknowledged", "acked_by": "U7"}, "*Acknowledged* by <@U7>"),
        ({"state": "assigned", "assignee": "U8", "acked_by": "U7"},
         "*Assigned* to <@U8> · acknowledged by <@U7>"),
        ({"state": "snoozed", "snooze_reason": "until green"}, "*Snoozed* until green"),
        ({"state": "snoozed", "snoozed_until": T0 + timedelta(hours=2)},
         "*Snoozed* until <!date^1733772540^"),
        ({"state": "bisecting", "bisect_status": "round 2, 16 -> 4 suspects"},
         "*Bisecting*: round 2, 16 -&gt; 4 suspects"),
        ({"state": "resolved", "resolved_at": T0 + timedelta(hours=3, minutes=12),
          "resolved_by": "U5"}, "*Resolved* after 3h12m by <@U5>"),
        ({"state": "resolved", "resolved_at": T0 + timedelta(days=2, hours=4),
          "resolved_at_sha": "e" * 40},
         "*Resolved* after 2d4h, jobs green again at "
         "<https://github.com/pytorch/pytorch/commit/" + "e" * 40 + "|eeeeeee>"),
    ],
)  # fmt: skip
def test_status_line(changes: dict[str, Any], expected: str) -> None:
    _, blocks = render_parent(alert(**changes))
    assert expected in blocks[0]["text"]["text"]


def test_jobs_show_streak_log_failure_line_flaky_and_recovered() -> None:
    jobs = (
        job("a", 4, log_url="https://logs.example/1", html_url="https://gh.example/1",
            failure_line="E   AssertionError: <@U123> " + "x" * 500, flaky=True),
        job("b", 3, html_url="https://gh.example/2"),
        job("c", 0, recovered=True),
    )  # fmt: skip
    _, blocks = render_parent(alert(jobs=jobs))
    body = all_text(blocks)
    assert "*a* failing for 4 commits since <https://github.com/pytorch/pytorch/commit/" in body
    assert "<https://logs.example/1|log>" in body and "https://gh.example/1" not in body
    assert "<https://gh.example/2|log>" in body
    assert ":warning: flaky" in body
    assert "~c~ recovered" in body
    [failure] = re.findall(r"`E   AssertionError[^`]*`", body)
    assert "&lt;@U123&gt;" in failure and len(failure) <= 202 and failure.endswith("…`")
    assert body.index("*b*") < body.index("~c~")


def test_more_than_ten_jobs_are_counted_not_listed() -> None:
    jobs = tuple(job(f"job{i:02d}", 3) for i in range(12)) + (job("old", 0, recovered=True),)
    body = all_text(render_parent(alert(jobs=jobs))[1])
    assert "*job09*" in body and "*job10*" not in body
    assert "_+3 more jobs (1 recovered)_" in body


def test_regression_range_and_suspects() -> None:
    suspects = tuple(
        CommitView(sha=f"{i:x}" * 40, title=f"change {i}", author=f"dev{i}", pr_number=100 + i)
        for i in range(1, 8)
    )
    view = alert(last_green=CommitView(sha="0" * 40), first_red=suspects[0], suspects=suspects)
    body = all_text(render_parent(view)[1])
    assert (
        "*Regression range:* last green <https://github.com/pytorch/pytorch/commit/"
        + "0" * 40
        + "|0000000> → first red `1111111` · *7 suspects*"  # its suspect line links it
    ) in body
    assert body.count("pytorch/commit/" + "1" * 40) == 1
    unlisted = replace(view, first_red=CommitView(sha="9" * 40))
    assert "first red <https://github.com/pytorch/pytorch/commit/" + "9" * 40 in \
        all_text(render_parent(unlisted)[1])
    assert "change 5 — dev5 (<https://github.com/pytorch/pytorch/pull/105|#105>)" in body
    assert "change 6" not in body and "_+2 more suspects_" in body


def test_links_line_merges_view_and_grafana_links_once() -> None:
    hud = "https://hud.pytorch.org/hud/pytorch/pytorch/main"
    view = alert(
        links={"HUD": hud, "Runbook": "https://runbook.example/inductor"}, external=(grafana(),)
    )
    blocks = render_parent(view)[1]
    [links] = [b for b in blocks if b["type"] == "context" and "HUD" in all_text([b])]
    line = links["elements"][0]["text"]
    assert line.startswith(f"<{hud}|HUD> · <https://runbook.example/inductor|Runbook> · ")
    assert "<https://grafana.example/d/xyz|Grafana dashboard>" in line
    assert "silence/new?a=1&amp;b=2|Silence>" in line
    assert line.count("runbook.example") == 1


def test_grafana_only_alert_renders_without_jobs() -> None:
    view = alert(jobs=(), title=None, external=(grafana(),))
    text, blocks = render_parent(view)
    assert text == (
        "[P2] broken-inductor: Inductor jobs failing for three commits in a row on Trunk"
    )
    [section] = [b for b in blocks if "fields" in b]
    fields = [f["text"] for f in section["fields"]]
    assert "*Reason*\nFailure_Threshold=1, Number_of_Jobs_Failing=1" in fields
    assert "*Priority*\nP2" in fields and "*Team*\nbroken-inductor" in fields
    actions = [e["action_id"] for e in blocks[-2]["elements"]]
    assert "alert_bisect" not in actions and "alert_resolve" in actions
    assert block_problems(blocks) == []


def test_actions_carry_the_alert_id() -> None:
    blocks = render_parent(alert())[1]
    actions = blocks[-2]
    assert actions["type"] == "actions" and actions["block_id"] == "alert:42:actions"
    by_id = {e["action_id"]: e for e in actions["elements"]}
    assert list(by_id) == ["alert_ack", "alert_assign", "alert_snooze", "alert_bisect",
                           "alert_retry", "alert_resolve"]  # fmt: skip
    assert by_id["alert_ack"]["value"] == "42"
    assert by_id["alert_retry"]["value"] == "42"
    assert by_id["alert_retry"]["text"]["text"] == "Retry failed jobs"
    assert by_id["alert_assign"]["type"] == "users_select"
    assert [o["value"] for o in by_id["alert_snooze"]["options"]] == [
        "42|30m", "42|1h", "42|2h", "42|4h", "42|1d", "42|green"
    ]  # fmt: skip
    assert by_id["alert_bisect"]["value"] == "42"
    assert by_id["alert_resolve"]["value"] == "42" and "confirm" in by_id["alert_resolve"]


def test_acked_alert_offers_unack_and_resolved_alert_has_no_actions() -> None:
    acked = render_parent(alert(state="acknowledged", acked_by="U7"))[1]
    ids = [e["action_id"] for b in acked if b["type"] == "actions" for e in b["elements"]]
    assert "alert_unack" in ids and "alert_ack" not in ids
    assigned = render_parent(alert(state="assigned", assignee="U8"))[1]
    [picker] = [e for b in assigned if b["type"] == "actions" for e in b["elements"]
                if e["action_id"] == "alert_assign"]  # fmt: skip
    assert picker["initial_user"] == "U8"
    resolved = render_parent(alert(state="resolved", resolved_at=T0 + timedelta(hours=1)))[1]
    assert all(b["type"] != "actions" for b in resolved)


def test_huge_hostile_alert_stays_within_every_limit() -> None:
    line = ("<!channel> <@U123> & " * 300)[:5000]
    jobs = tuple(
        job(f"inductor / <@U123> job {i} & <!channel>", 3 + i % 4, failure_line=line,
            log_url=f"https://logs.example/{i}?a=<!channel>&b=|", flaky=i % 3 == 0,
            recovered=i % 7 == 0)
        for i in range(300)
    )  # fmt: skip
    suspects = tuple(
        CommitView(sha=f"{i:040x}", title=f"<!channel> fix {i} & <@U123> " * 20,
                   author="<!here> & <@U123>", pr_number=i)
        for i in range(500)
    )  # fmt: skip
    view = alert(
        team="<!channel>&team",
        route="<@U123>",
        title="<!channel> title",
        state="assigned",
        assignee="U0ASSIGNEE",
        acked_by="U0ACKER",
        jobs=jobs,
        last_green=suspects[0],
        first_red=suspects[1],
        suspects=suspects,
        external=tuple(grafana(title=f"<!channel> {i}" * 50, reason=line) for i in range(20)),
        links={f"<!channel> {i}": f"https://x.example/{i}?<@U123>" for i in range(200)},
        escalated=True,
    )
    text, blocks = render_parent(view)

    assert block_problems(blocks) == []  # the fake Slack's own limit check
    assert len(blocks) <= 50
    for block in blocks:
        assert len(block.get("block_id", "")) <= 255
        assert len(block.get("fields", [])) <= 10
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        for element in block.get("elements", []):
            assert len(element.get("action_id", "")) <= 255
            assert len(element.get("value", "")) <= 2000
            if element["type"] == "button":
                assert len(element["text"]["text"]) <= 75
    for piece in [text, *strings(blocks)]:
        assert_no_leaks(piece, allowed_mentions={"U0ASSIGNEE", "U0ACKER"})
    assert "_+290 more jobs" in all_text(blocks)
    assert "_+495 more suspects_" in all_text(blocks)


# ------------------------------------------------------------------ thread replies

HOSTILE_DATA: dict[str, Any] = {
    "jobs": [{"key": HOSTILE, "streak": 4}] * 15,
    "key": HOSTILE,
    "sha": "<!channel>",
    "duration_s": 11520,
    "reason": HOSTILE,
    "assignee": "U0ASSIGNEE",
    "assignee_name": HOSTILE,
    "until": HOSTILE,
    "mentions": ["U1", "S2", "!channel", "<!here>"],
    "priority": "P1",
    "age_s": 7200,
    "suspects": 16,
    "runs_per_round": 3,
    "round": 2,
    "before": 16,
    "after": 4,
    "title": HOSTILE,
    "confirmed": False,
}


@pytest.mark.parametrize("kind", get_args(EventKind))
def test_every_event_kind_renders_without_pings(kind: str) -> None:
    event = EventView(kind=kind, actor="U0ACTOR", at=T0, data=HOSTILE_DATA,  # type: ignore[arg-type]
                      actor_name=HOSTILE)  # fmt: skip
    text = render_event(event, alert())
    assert text and not text.startswith("_")  # a dedicated writer, not the generic fallback
    paging = {"reminder": {"U1"}, "escalated": {"U1"}, "opened": {"U1"},
              "assigned": {"U0ASSIGNEE"}, "reopened": {"U1"}}  # pages mention their targets
    mentions = paging.get(kind, set())
    assert_no_leaks(text, allowed_mentions=mentions)
    if kind not in paging:
        assert "<@" not in text and "<!subteam" not in text


def test_reminder_and_escalation_mention_their_targets() -> None:
    data = {"mentions": ["U1", "S2"], "priority": "P1", "age_s": 7200}
    reminder = render_event(EventView(kind="reminder", actor=None, at=T0, data=data), alert())
    assert reminder.startswith("<@U1> <!subteam^S2> ") and "after 2h" in reminder
    escalated = render_event(EventView(kind="escalated", actor=None, at=T0, data=data), alert())
    assert escalated.startswith("<@U1> <!subteam^S2> ") and "Escalated to P1" in escalated


def test_event_texts() -> None:
    view = alert()

    def say(kind: str, actor: str | None = "U0ACTOR", **data: Any) -> str:
        event = EventView(kind=kind, actor=actor, at=T0, data=data, actor_name="alice")  # type: ignore[arg-type]
        return render_event(event, view)

    commit = "<https://github.com/pytorch/pytorch/commit/" + "e" * 40 + "|eeeeeee>"
    assert say("acknowledged") == ":eyes: Acknowledged by *alice*"
    assert say("resolved", actor=None, sha="e" * 40, duration_s=11520) == (
        f":white_check_mark: Resolved after 3h12m: jobs green again at {commit}"
    )
    assert say("job_joined", key="test (x)", sha="e" * 40) == (
        f":heavy_plus_sign: *test (x)* started failing at {commit}"
    )
    assert say("snoozed", until="green") == ":zzz: Snoozed until the jobs are green by *alice*"
    assert "until <!date^1733772540^" in say("snoozed", until=(T0 + timedelta(hours=2)).isoformat())
    assert say("snoozed", until="e" * 40) == f":zzz: Snoozed until {commit} lands by *alice*"
    bisect_round = say("bisect_round", round=2, before=16, after=4)
    assert bisect_round == ":mag: Bisect round 2: 16 → 4 suspects"
    assert "about 2 rounds" in say("bisect_started", suspects=16, runs_per_round=3)
    assert "(not confirmed yet" in say("bisect_found", sha="e" * 40, title="t")
    assert "*x* (5 commits)" in say("extended", jobs=[{"key": "x", "streak": 5}])
    nameless = EventView(kind="acknowledged", actor="U0ACTOR", at=T0)
    assert render_event(nameless, view) == ":eyes: Acknowledged by `U0ACTOR`"


@pytest.mark.parametrize(
    ("suspects", "per_round", "rounds"), [(1, 1, 0), (16, 1, 4), (17, 1, 5), (16, 3, 2), (64, 3, 3)]
)
def test_bisect_rounds(suspects: int, per_round: int, rounds: int) -> None:
    assert bisect_rounds(suspects, per_round) == rounds


# --------------------------------------------------------------------- summaries


def test_summary_line() -> None:
    now = T0 + timedelta(hours=3, minutes=12)
    line = render_alert_summary(alert(state="assigned", assignee="U8", acked_by="U7"), now)
    assert line == (
        "`a1b2` [P2] broken-inductor: 2 Inductor jobs failing for 3+ commits on trunk"
        " — assigned to <@U8>, open for 3h12m"
    )
    snoozed = alert(state="snoozed", acked_by="U7", snooze_reason="until green")
    assert render_alert_summary(snoozed, now).endswith(
        " — acknowledged by <@U7>, snoozed until green, open for 3h12m")
    unowned = render_alert_summary(alert(), now)
    assert unowned.endswith(" — unowned, open for 3h12m")
    assert "open · open" not in unowned and "· open" not in unowned
    resolved = replace(alert(), state="resolved", resolved_at=T0 + timedelta(minutes=45))
    assert render_alert_summary(resolved, now).endswith(" — resolved after 45m")
    hostile = render_alert_summary(alert(jobs=(), title=HOSTILE), now)
    assert_no_leaks(hostile)


# ------------------------------------------------------------------- quiet parent


def test_long_job_lists_show_their_common_prefix_once() -> None:
    prefix = "inductor / cuda12.8-py3.10-gcc9-sm86-long-build-config-name"
    configs = [f"test (suite_{i})" for i in range(13)]
    view = alert(jobs=tuple(job(f"{prefix} / {c}") for c in configs))
    body = all_text(render_parent(view)[1])
    assert body.count(prefix) == 1  # a heading, not on every line
    for config in configs[:10]:
        assert f"• :x: *{config}* failing for 3 commits" in body
    alone = all_text(render_parent(alert(jobs=(job(f"{prefix} / test (a)"),)))[1])
    assert f"*{prefix} / test (a)*" in alone  # one job keeps its whole name


def test_a_job_line_does_not_repeat_the_first_red_commit() -> None:
    red = CommitView(sha="c" * 40)
    body = all_text(render_parent(alert(first_red=red))[1])
    assert "since" not in body
    other = all_text(render_parent(alert(first_red=CommitView(sha="e" * 40)))[1])
    assert "since <https://github.com/pytorch/pytorch/commit/cccc" in other


def test_links_line_names_each_link_once() -> None:
    view = alert(external=(grafana(),), links={"Grafana dashboard": "https://grafana.example/d/r",
                                               "Runbook": "https://runbook.example/inductor"})
    links = render_parent(view)[1][-3]["elements"][0]["text"]
    assert links.count("Grafana dashboard") == 1 and links.count("Runbook") == 1


def test_people_line_by_name_in_the_channel_by_mention_elsewhere() -> None:
    view = alert(oncall=("S0ONCALL",), owners=("U5", "U6"))
    assert "On call: <!subteam^S0ONCALL> · Owners: <@U5>, <@U6>" in \
        render_parent(view)[1][0]["text"]["text"]
    named = replace(view, names={"S0ONCALL": "inductor-oncall", "U5": "erin", "U6": "*x*"})
    head = render_parent(named)[1][0]["text"]["text"]
    assert "On call: @inductor-oncall · Owners: @erin, @∗x∗" in head
    assert "<@" not in head and "<!subteam" not in head


# ----------------------------------------------------------------------- evidence

HF2 = "cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 2, 3, linux.g5.4xlarge.nvidia.gpu)"


def run(name: str = HF2, **kw: Any) -> FailedRunView:
    fields: dict[str, Any] = {"key": "inductor / test (inductor_huggingface)", "job_name": name,
                              "url": "https://github.com/pytorch/pytorch/actions/runs/1/job/2",
                              "state": "done", "line": "RuntimeError: bad tiling",
                              "kind": "test", "signature": "RuntimeError: bad tiling"}
    return FailedRunView(**(fields | kw))


def shard(config: str, i: int, n: int) -> str:
    return f"cuda12.8-py3.10-gcc9-sm86 / test ({config}, {i}, {n}, linux.g5.4xlarge.nvidia.gpu)"


def test_runs_failing_alike_share_one_line_and_infra_is_shown_apart() -> None:
    runs = (run(shard("inductor_huggingface", 1, 3)), run(shard("inductor_huggingface", 2, 3)),
            run(shard("inductor_timm", 1, 1), key="inductor / test (inductor_timm)"),
            run(shard("inductor_torchbench", 1, 2), line="AssertionError: accuracy",
                signature="AssertionError: accuracy"),
            run(shard("inductor_huggingface", 3, 3), kind="infra", cause="runner lost",
                line="##[error]The runner has received a shutdown signal.",
                signature="infra: runner lost"),
            run(shard("inductor_torchbench", 2, 2), state="wanted", line=None, kind=None,
                signature=None))
    text = all_text(render_parent(alert(failed_runs=runs))[1])
    assert "*What failed* (newest failing commit)" in text
    assert ("• `RuntimeError: bad tiling` — same error in 3 jobs: "
            "<https://github.com/pytorch/pytorch/actions/runs/1/job/2|inductor_huggingface 1/3>"
            ) in text
    assert "timm 1/1>\n• `AssertionError: accuracy` — <" in text
    assert "• _log not read yet_ — <" in text
    assert "*Infrastructure failures* (not a regression" in text
    assert "• runner lost — <https://github.com/pytorch/pytorch/actions/runs/1/job/2|" \
           "inductor_huggingface 3/3>" in text
    assert "bad tiling`\n" not in text.split("*What failed*")[0], "job lines do not repeat it"


def test_without_any_evidence_the_job_keeps_its_own_failure_line() -> None:
    view = alert(jobs=(job(failure_line="RuntimeError: CUDA error"),),
                 failed_runs=(run(state="none", line=None, kind=None, signature=None),))
    text = all_text(render_parent(view)[1])
    assert "*What failed*" not in text
    assert "`RuntimeError: CUDA error`" in text


def test_each_job_says_whether_it_looks_real_or_flaky_and_why() -> None:
    jobs = (job(verdict="real", evidence=("the same error on 4 failing commits in a row",)),
            job("inductor / test (dynamic)", verdict="flaky",
                evidence=("shard 2/3 passed on a rerun at abc1234",)),
            job("inductor / test (cpu)", verdict="unclear",
                evidence=("the same error on 2 failing commits in a row",),
                against=("2 different errors on 3 failing commits",)),
            job("inductor / test (aot)", verdict="unclear", evidence=("no error lines yet",)))
    text = all_text(render_parent(alert(jobs=jobs))[1])
    assert ":dart: looks real: the same error on 4 failing commits in a row" in text
    assert ":game_die: looks flaky: shard 2/3 passed on a rerun at abc1234" in text
    assert (":grey_question: unclear: the same error on 2 failing commits in a row; but 2 "
            "different errors on 3 failing commits") in text
    assert "no error lines yet" not in text, "nothing to say is not said"


def test_ranked_suspects_come_most_likely_first_with_their_reasons() -> None:
    culprit = CommitView(sha="b" * 40, title="[inductor] new tiling", author="dev1",
                         reasons=("touches torch/_inductor/codegen/triton.py, named in the "
                                  "traceback (innermost frame)",
                                  "in the route's code area (torch/_inductor/**)"), score=11)
    other = CommitView(sha="a" * 40, title="docs", reasons=(), score=0)
    view = alert(suspects=(culprit, other), first_red=culprit, ranked=True)
    text = all_text(render_parent(view)[1])
    assert "*2 suspects*, most likely first" in text
    assert text.index("new tiling") < text.index("docs")
    assert ("↳ touches `torch/_inductor/codegen/triton.py`, named in the traceback (innermost "
            "frame); in the route's code area (`torch/_inductor/**`)") in text
    plain = all_text(render_parent(replace(view, ranked=False))[1])
    assert "most likely first" not in plain and "↳" not in plain


def test_hostile_evidence_stays_inert_and_within_limits() -> None:
    line = ("<!channel> *bold* `tick` & <@U123> " * 200)[:5000]
    runs = tuple(run(shard(f"cfg{i}", 1, 1), line=f"{line}{i}", signature=f"sig{i % 40}",
                     url=f"https://x.example/{i}?<!channel>", kind="infra" if i % 5 == 0
                     else "test", cause=line)
                 for i in range(400))
    suspects = tuple(CommitView(sha=f"{i:040x}", title=HOSTILE, reasons=(line, line), score=1)
                     for i in range(300))
    jobs = tuple(job(f"inductor / job {i}", verdict="unclear", evidence=(line,),
                     against=(line,)) for i in range(30))
    text, blocks = render_parent(alert(jobs=jobs, failed_runs=runs, suspects=suspects,
                                       ranked=True))
    assert block_problems(blocks) == []
    assert len(blocks) <= 50
    for piece in [text, *strings(blocks)]:
        assert_no_leaks(piece)
    assert "_+" in all_text(blocks)


def test_a_flaky_commit_is_named_with_its_failed_run() -> None:
    jobs = (job("a", 4, flaky=True, flaky_sha="f" * 40, flaky_url="https://logs.example/9"),
            job("b", 0, recovered=True, flaky=True, flaky_sha="e" * 40),
            job("c", 3, flaky=True, flaky_url="javascript:alert(1)"))
    body = all_text(render_parent(alert(jobs=jobs))[1])
    assert ("*a* failing for 4 commits" in body and ":warning: flaky at `fffffff` (failed, "
            "then passed on a rerun: <https://logs.example/9|failed run>)" in body)
    assert "~b~ recovered · :warning: flaky at `eeeeeee` (failed, then passed on a rerun)" in body
    assert "javascript" not in body  # an unsafe link is left out, not shown
