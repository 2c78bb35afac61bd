"""Block Kit and mrkdwn as text, as console mode prints them: generic, so it follows render.py."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.slack.block_text import message_text, view_text
from bot.slack.mrkdwn import date, link
from bot.slack.render import render_event, render_parent
from bot.slack.view import CommitView, EventKind, EventView
from tests.slack.test_render import HOSTILE_DATA, T0, alert, grafana, job, strings

_LINK = re.compile(r"<(https?://[^|<>]+)\|([^<>]*)>")


@pytest.mark.parametrize(("text", "shown"), [
    ("<https://x.example/a?b=1&amp;c=2|the log>", "the log[1]\n\n[1] https://x.example/a?b=1&c=2"),
    ("<https://x.example/a>", "https://x.example/a"),
    ("<@U0ALICE> and <@U2|bob>", "@U0ALICE and @bob"),
    ("<!subteam^S0ONCALL> <!subteam^S1|@sheriffs>", "@S0ONCALL @sheriffs"),
    ("<!here> <!channel>", "@here @channel"),
    ("<#C0CI|ci-inductor> <#C0CI>", "#ci-inductor #C0CI"),
    (date(T0), "2024-12-09 17:29 UTC"),
    ("&lt;!channel&gt; &amp; friends", "<!channel> & friends"),
    (":x: :white_check_mark: :no_such_emoji: 12:30:45", "❌ ✅ :no_such_emoji: 12:30:45"),
    ("*Jobs* and _not found_ in test (inductor_timm)",
     "Jobs and not found in test (inductor_timm)"),
    ("`*kept* _as is_ &lt;b&gt;`", "`*kept* _as is_ <b>`"),
    ("~recovered~ 2*3*4 snake_case_name", "~recovered~ 2*3*4 snake_case_name"),
])
def test_mrkdwn_reads_as_slack_shows_it(text: str, shown: str) -> None:
    assert message_text(text) == shown


def test_each_url_is_one_footnote_numbered_in_order() -> None:
    text = (f"{link('https://a.example/1', 'one')} {link('https://b.example/2', 'two')} "
            f"{link('https://a.example/1', 'again')}")
    assert message_text(text) == ("one[1] two[2] again[1]\n\n"
                                  "[1] https://a.example/1\n[2] https://b.example/2")


def test_every_block_type_reads_as_it_looks() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Daily digest"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "*Bold* line"},
         "fields": [{"type": "mrkdwn", "text": "*Status*\nfiring"},
                    {"type": "plain_text", "text": "P2"}],
         "accessory": {"type": "button", "text": {"type": "plain_text", "text": "Open"},
                       "url": "https://x.example/open", "action_id": "open"}},
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "image", "image_url": "https://i.example/a",
                                          "alt_text": "logo"},
                                         {"type": "mrkdwn", "text": "_small print_"}]},
        {"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Acknowledge"},
             "action_id": "a", "value": "1", "style": "primary"},
            {"type": "users_select", "action_id": "u",
             "placeholder": {"type": "plain_text", "text": "Assign…"}},
            {"type": "users_select", "action_id": "v", "initial_user": "U0BOB",
             "placeholder": {"type": "plain_text", "text": "Assign…"}},
            {"type": "static_select", "action_id": "s",
             "placeholder": {"type": "plain_text", "text": "Snooze…"},
             "options": [{"text": {"type": "plain_text", "text": "1 hour"}, "value": "1h"}]}]},
        {"type": "rich_text", "elements": [{"type": "rich_text_section", "elements": [
            {"type": "text", "text": "See "}, {"type": "user", "user_id": "U1"},
            {"type": "text", "text": " "},
            {"type": "link", "url": "https://x.example/r", "text": "run"}]}]},
        {"type": "video", "title": {"type": "plain_text", "text": "?"}},
    ]
    assert message_text("fallback", blocks).splitlines() == [
        "Daily digest", "════════════",
        "Bold line",
        "  Status firing",
        "  P2  [ Open ][1]",
        "─" * 40,
        "[image: logo] small print",
        "[ Acknowledge ]  [ Assign… ▾ ]  [ @U0BOB ▾ ]  [ Snooze… ▾ ]",
        "See @U1 run[2]",
        "[video block]",
        "",
        "[1] https://x.example/open",
        "[2] https://x.example/r",
    ]


def test_a_view_shows_its_title_and_blocks() -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Snooze A1"},
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "until green"}}]}
    assert view_text(view) == "Snooze A1\nuntil green"


def shown_ok(text: str, blocks: list[dict[str, Any]]) -> str:
    """The printed message keeps every visible word and follows every link of ``blocks``."""
    printed = message_text(text, blocks)
    body, _, notes = printed.partition("\n\n[1] ")
    footnotes = ("[1] " + notes).splitlines() if notes else []
    urls = {line.split(" ", 1)[1] for line in footnotes}
    for piece in strings(blocks):
        for url, _label in _LINK.findall(piece):
            assert url.replace("&amp;", "&") in urls, (url, printed)
    # every real token became words; what shows as "<" is escaped content, shown as written
    sources = list(strings(blocks)) if blocks else [text]
    assert body.count("<") == sum(piece.count("&lt;") for piece in sources), body
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("type") == "button":
                assert f"[ {element['text']['text']} ]" in body
    return printed


def test_a_rendered_alert_keeps_title_status_jobs_range_links_and_buttons() -> None:
    view = alert(
        jobs=(job(log_url="https://github.com/pytorch/pytorch/actions/runs/7/job/8",
                  failure_line="RuntimeError: CUDA error"),
              job("inductor / test (dynamic)", 5, recovered=True)),
        last_green=CommitView(sha="a" * 40, title="Green one"),
        first_red=CommitView(sha="c" * 40, title="Breaks it"),
        suspects=(CommitView(sha="c" * 40, title="Breaks it", author="alice", pr_number=7),),
        external=(grafana(),),
        links={"HUD": "https://hud.pytorch.org/hud/pytorch/pytorch/main/0"},
        acked_by="U0ACKER", state="acknowledged")
    printed = shown_ok(*render_parent(view))
    lines = printed.splitlines()
    assert lines[0] == "[P2] broken-inductor: 1 Inductor job failing for 3+ commits on trunk"
    assert lines[1] == "👀 Acknowledged by @U0ACKER"
    # jobs of one workflow under its name; the first red commit is the range's, not repeated
    assert lines[lines.index("Jobs") + 1] == "inductor"
    assert "• ❌ test (inductor_huggingface) failing for 3 commits · log[1]" in lines
    assert "      `RuntimeError: CUDA error`" in lines
    assert "• ✅ ~test (dynamic)~ recovered" in lines
    assert any(line.startswith("Regression range: last green aaaaaaa[") for line in lines)
    assert "• ccccccc[3] Breaks it — alice (#7[" in printed
    assert "🔔 Grafana: Inductor jobs failing for three commits in a row on Trunk" in printed
    assert "[1] https://github.com/pytorch/pytorch/actions/runs/7/job/8" in lines


@pytest.mark.parametrize("kind", get_args(EventKind))
def test_every_thread_reply_prints_without_markup_tokens(kind: str) -> None:
    event = EventView(kind=kind, actor="U1", at=T0, data=HOSTILE_DATA,  # type: ignore[arg-type]
                      actor_name="alice")
    printed = shown_ok(render_event(event, alert()), [])
    assert printed.strip()


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=80), st.text(max_size=200))
def test_any_rendered_content_prints(title: str, line: str) -> None:
    """Whatever CI text went into the alert, the printed message follows every link."""
    view = alert(jobs=(job(failure_line=line, log_url="https://x.example/log?q=" + title),),
                 suspects=(CommitView(sha="b" * 40, title=title, author=line),), title=title,
                 links={title or "x": "https://x.example/" + line})
    shown_ok(*render_parent(replace(view, team=title or "team")))
