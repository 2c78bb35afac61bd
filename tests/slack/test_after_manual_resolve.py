"""Failures after a manual resolve, through the real server and the fake Slack: the rule the
Resolve confirmation states. Same breakage failing on a newer commit: the same alert (same
message) reopens with a "reopened" reply; a new breakage: a new alert linking the old one.
"""

from __future__ import annotations

from pathlib import Path

from bot.store import outbox
from tests.support.alerts import CHANNEL, HF, broken_trunk, feed
from tests.support.slack_side import SlackSide, fake_workspace, start, text_of


def resolved_by_hand(side: SlackSide) -> None:
    assert "Resolved A1. If its jobs fail on a newer commit it reopens" in \
        side.command("resolve A1 reverted upstream", user="U1").text()
    side.wait_parent(":white_check_mark: *Resolved*")


def thread_of(side: SlackSide, alert_id: int) -> list[str]:
    posted = outbox.posted_parent(side.bot.store.db, alert_id)
    if posted is None:
        return []  # not posted yet
    return [m["text"] for m in side.fake.replies(posted[0], posted[1])]


def test_resolve_confirmation_states_the_rule(tmp_path: Path) -> None:
    with fake_workspace() as fake, start(tmp_path, fake, broken_trunk(), 7) as side:
        assert "it reopens here; a new breakage opens a new alert that links back" in \
            text_of(side.parent())


def test_a_newer_failure_reopens_the_same_alert(tmp_path: Path) -> None:
    trunk = broken_trunk(12, first_bad=5)
    with fake_workspace() as fake, start(tmp_path, fake, trunk, 7) as side:
        resolved_by_hand(side)
        # a rerun at an older commit fails again: the person resolved with that in view
        trunk.set(6, HF[1], "failure", "failure", line="RuntimeError: CUDA error")
        feed(side.bot, trunk, 7, side.running.clock)
        assert side.row()["state"] == "resolved"
        # the job fails on a newer commit: the same alert comes back
        feed(side.bot, trunk, 8, side.running.clock)
        assert side.row()["state"] == "open" and side.row()["resolved_by"] is None
        side.wait_parent(":red_circle: *Open*")
        reply = side.wait_reply("Reopened")
        assert reply.startswith("<@U1> :rotating_light: Reopened: *inductor / ")
        assert side.bot.store.db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
        assert len(fake.messages(CHANNEL)) == 1, "the same message, not a new alert"


def test_a_new_breakage_opens_a_new_alert_that_links_back(tmp_path: Path) -> None:
    trunk = broken_trunk(12, first_bad=5)
    with fake_workspace() as fake, start(tmp_path, fake, trunk, 7) as side:
        resolved_by_hand(side)
        trunk.set(8, HF[1], "success")  # fixed, then broken again by another change
        for i in (9, 10, 11):
            trunk.set(i, HF[1], "failure", line="AssertionError: new")
        feed(side.bot, trunk, 11, side.running.clock)
        assert side.row(1)["state"] == "resolved" and side.row(2)["state"] == "open"
        link = fake.wait_for(lambda: next(
            (t for t in thread_of(side, 2) if "Follows" in t), None))
        assert "|A1>" in link and "fake-slack.example" in link
        assert len(fake.messages(CHANNEL)) == 2
