"""Paging through the real server and the fake Slack: whoever must act is mentioned in a new
message, by the route's notify policy; the channel message names people without pinging them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.ingest.hud import parse_hud_page
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import CHANNEL, break_timm, broken_trunk
from tests.support.slack_side import USERS, SlackSide, start, text_of
from tests.support.trunk import REPO, Trunk

PEOPLE: dict[str, Any] = {"oncall": ("S0ONCALL",), "owners": ("U5",),
                          "escalate_to": ("U6",), "remind_after": timedelta(minutes=30),
                          "escalate_after": timedelta(hours=2)}


@contextmanager
def incident(tmp_path: Path, **route: Any) -> Iterator[SlackSide]:
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"], "S0ONCALL": ["U4"]},
                   usergroup_handles={"S0ONCALL": "inductor-oncall"}) as fake, \
            start(tmp_path, fake, broken_trunk(12, first_bad=5), 7,
                  route={**PEOPLE, **route}) as side:
        yield side


def first_post(side: SlackSide) -> dict[str, Any]:
    """The parent as it was first posted (chat.postMessage), before any edit."""
    return next(c.params for c in side.fake.calls_to("chat.postMessage")
                if not c.params.get("thread_ts"))


def test_opening_an_alert_pages_the_oncall_in_a_new_message(tmp_path: Path) -> None:
    with incident(tmp_path) as side:
        page = side.wait_reply("<!subteam^S0ONCALL>")
        assert page.startswith("<!subteam^S0ONCALL> :rotating_light: New alert")
        assert "[P2] broken-inductor" in page
        # the page is a post of its own, in the alert's thread
        [call] = [c for c in side.fake.calls_to("chat.postMessage")
                  if "<!subteam^S0ONCALL>" in c.params.get("text", "")]
        assert call.params["thread_ts"] == side.parent()["ts"]
        # the parent shows who is on call and who owns the route, by name: no ping
        posted = text_of(first_post(side))
        assert "On call: @inductor-oncall" in posted and "Owners: @erin" in posted
        assert "<!subteam^" not in posted and "<@U5>" not in posted


def test_never_policy_pages_nobody_at_open(tmp_path: Path) -> None:
    with incident(tmp_path, notify={"default": "never"}) as side:
        side.click("alert_ack", "U2")
        side.wait_reply("Acknowledged")  # the thread is live; no page came before
        assert not [t for t in side.thread() if "<!subteam" in t or "<@" in t]
        assert "On call: @inductor-oncall" in text_of(side.parent())


def test_escalation_policy_waits_for_the_escalation(tmp_path: Path) -> None:
    with incident(tmp_path, notify={"default": "open", "P2": "escalation"}) as side:
        bot, clock = side.bot, side.running.clock
        opened = clock.now
        clock.now = opened + timedelta(minutes=45)
        assert bot.run_nudges() == {}  # no reminder: the on-call is not paged before
        clock.now = opened + timedelta(hours=2, minutes=1)
        assert bot.run_nudges() == {1: "escalated"}
        escalated = side.wait_reply("Escalated")
        assert escalated.startswith("<@U6> ")
        assert not [t for t in side.thread() if "<!subteam" in t]


def test_assigning_someone_mentions_them_and_says_so(tmp_path: Path) -> None:
    with incident(tmp_path) as side:
        answer = side.command("assign A1 <@U3|carol>", user="U2").text()
        assert answer == ("<:bust_in_silhouette: Assigned A1 to <@U3>; they were notified in "
                          "the alert's thread.").lstrip("<")
        reply = side.wait_reply("assigned this alert to you")
        assert reply.startswith(":bust_in_silhouette: <@U3>: ")
        assert "You took A1" in side.command("assign A1 me", user="U4").text()
        assert "took this alert" in side.wait_reply("took this alert")


def test_the_picker_notifies_the_assignee_too(tmp_path: Path) -> None:
    with incident(tmp_path) as side:
        side.click("alert_assign", "U2", choose="U3")
        assert "<@U3>" in side.wait_reply("assigned this alert to you")


def join_timm(side: SlackSide, trunk: Trunk, after: timedelta) -> None:
    """The timm job's results for commits 5-7 arrive ``after`` the alert opened: failures."""
    break_timm(trunk, 5, 7)
    page = parse_hud_page(trunk.hud_page(7), REPO, "main")
    side.running.clock.now += after  # the clock stood where the alert opened
    side.bot.ingestor.commits(REPO, "main", list(reversed(page.commits)))
    side.bot.ingestor.results(page.results)


def test_a_job_joining_in_the_first_minutes_updates_the_parent_only(tmp_path: Path) -> None:
    trunk = broken_trunk(12, first_bad=5, timm_known_until=4)
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"]}) as fake, \
            start(tmp_path, fake, trunk, 7) as side:
        join_timm(side, trunk, timedelta(minutes=2))
        side.wait_parent("2 Inductor jobs")
        side.click("alert_ack", "U2")
        side.wait_reply("Acknowledged")
        assert not [t for t in side.thread() if "started failing" in t]
        assert len(fake.messages(CHANNEL)) == 1


def test_a_job_joining_later_gets_its_reply(tmp_path: Path) -> None:
    trunk = broken_trunk(12, first_bad=5, timm_known_until=4)
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"]}) as fake, \
            start(tmp_path, fake, trunk, 7) as side:
        join_timm(side, trunk, timedelta(minutes=30))
        assert "inductor_timm" in side.wait_reply("started failing")
        assert len(fake.messages(CHANNEL)) == 1
