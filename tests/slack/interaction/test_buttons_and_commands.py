"""Slash commands, buttons and the App Home over signed HTTP against the running bot.

The real bot serves ``/slack/events`` on 127.0.0.1 and talks to a fake Slack; each test
opens a real alert by ingesting a broken trunk, then acts as Slack would: signed
form posts, ``response_url`` answers recorded by the fake, and the alert's parent
message and thread read back from the fake.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import (
    CHANNEL,
    break_timm,
    broken_trunk,
    feed,
)
from tests.support.slack_side import (
    Reply,
    SlackSide,
    fake_workspace,
    showing,
    start,
    text_of,
)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with fake_workspace() as server:
        yield server


@pytest.fixture
def slack(tmp_path: Path, fake: FakeSlack) -> Iterator[SlackSide]:
    with start(tmp_path, fake, broken_trunk(), 7) as side:
        yield side


# ------------------------------------------------------------------- slash command


def test_slash_ack_answers_at_once_edits_the_parent_and_replies_in_the_thread(
        slack: SlackSide) -> None:
    started = time.monotonic()
    reply = slack.command("ack")
    assert reply.http.status_code == 200 and time.monotonic() - started < 3
    assert "You acknowledged A1" in reply.text()
    parent = slack.wait_parent("*Acknowledged* by <@U1>")
    assert '"action_id": "alert_unack"' in text_of(parent)  # the button flipped
    assert '"action_id": "alert_ack"' not in text_of(parent)
    assert ":eyes: Acknowledged by" in slack.wait_reply("Acknowledged by")
    row = slack.row()
    assert row["acked_by"] == "U1" and row["acked_at"] is not None
    assert slack.kinds().count("acknowledged") == 1


def test_every_sub_command_changes_the_alert_and_its_timeline(slack: SlackSide) -> None:
    before = len(slack.kinds())
    now = slack.running.clock.now

    assert "Assigned A1 to <@U1>" in slack.command("assign me").text()
    slack.wait_parent("*Assigned* to <@U1>")
    assert "Assigned A1 to <@U2>" in slack.command("assign A1 <@U2|bob>", user="U3").text()
    slack.wait_parent("*Assigned* to <@U2>")
    assert slack.row()["assigned_by"] == "U3"
    assert "Assigned to *bob* by" in slack.wait_reply("*bob*")

    answer = slack.command("snooze 2h").text()
    assert "Snoozed A1 for 2h, until" in answer
    slack.wait_parent(":zzz: *Snoozed* until")
    row = slack.row()
    assert row["snooze_kind"] == "duration" and row["snoozed_by"] == "U1"
    assert row["snoozed_until"] == (now + timedelta(hours=2)).isoformat()

    assert "Unsnoozed A1" in slack.command("unsnooze A1").text()
    assert slack.row()["snooze_kind"] is None and slack.row()["snoozed_until"] is None

    sha = slack.trunk.shas[6]
    assert f"until `{sha[:10]}` has results" in slack.command(f"snooze until {sha[:8]}").text()
    assert slack.row()["snooze_sha"] == sha  # completed from the trunk history
    slack.wait_parent(f"*Snoozed* until {sha[:10]} has results")

    assert "until the jobs are green" in slack.command("snooze A1 green").text()
    assert slack.row()["snooze_kind"] == "green" and slack.row()["snooze_sha"] is None

    assert "Resolved A1" in slack.command("resolve A1 reverted in #4242").text()
    parent = slack.wait_parent(":white_check_mark: *Resolved*", "by <@U1>")
    assert '"type": "actions"' not in text_of(parent)  # no buttons on a resolved alert
    row = slack.row()
    assert row["state"] == "resolved" and row["resolve_reason"] == "reverted in #4242"
    assert "(reverted in #4242)" in slack.wait_reply("Resolved by")
    assert slack.kinds()[before:] == ["assigned", "assigned", "snoozed", "unsnoozed", "snoozed",
                                      "snoozed", "resolved"]


def test_list_and_show(slack: SlackSide) -> None:
    listed = slack.command("list").text()
    assert "*1 open alert for this channel:*" in listed
    assert "`A1`" in listed and "_unowned_" in listed
    assert "<https://fake-slack.example/archives/C0TEST/p" in listed  # the thread
    elsewhere = slack.command("list", channel="C0ELSEWHERE").text()
    assert "No open alerts for this channel" in elsewhere
    assert "`A1`" in slack.command("list all", channel="C0ELSEWHERE").text()

    reply = slack.command("show A1")
    [answer] = slack.fake.wait_for(lambda: slack.fake.responses(reply.key))
    blocks = json.dumps(answer["blocks"])
    assert "alert_ack" in blocks and "Open the alert's thread" in blocks
    assert answer["response_type"] == "ephemeral"


# ------------------------------------------------------------------- buttons


def test_buttons_run_the_same_actions(slack: SlackSide) -> None:
    slack.click("alert_ack", "U2")
    slack.wait_parent("*Acknowledged* by <@U2>")
    slack.click("alert_assign", "U2", choose="U3")
    slack.wait_parent("*Assigned* to <@U3>", "acknowledged by <@U2>")
    assert slack.row()["assignee"] == "U3" and slack.row()["assigned_by"] == "U2"
    slack.click("alert_snooze", "U3", choose="1h")
    slack.wait_parent(":zzz: *Snoozed* until")
    assert slack.row()["snooze_kind"] == "duration"
    slack.click("alert_unack", "U3")
    slack.wait_parent('"action_id": "alert_ack"')
    assert slack.row()["acked_by"] is None
    slack.click("alert_resolve", "U2")  # allowed through the S0FIXERS group
    slack.wait_parent(":white_check_mark: *Resolved*", "by <@U2>")
    assert slack.kinds()[-5:] == ["acknowledged", "assigned", "snoozed", "unacknowledged",
                                  "resolved"]
    assert slack.fake.responses() == []  # changes answer themselves: no ephemeral noise
    for needle in ("Acknowledged by", "Assigned to *carol*", "Snoozed until",
                   "Acknowledgement withdrawn", "Resolved by"):
        slack.wait_reply(needle)


def test_parallel_clicks_and_commands_have_exactly_one_winner(slack: SlackSide) -> None:
    users = [f"U{i}" for i in range(1, 8)]
    parent = slack.parent()

    def act(user: str) -> Reply:
        if user in ("U6", "U7"):
            return slack.command("ack A1", user=user)
        return slack.click("alert_ack", user, source=parent)

    with ThreadPoolExecutor(len(users)) as pool:
        replies = list(pool.map(act, users))
    assert all(r.http.status_code == 200 for r in replies)
    assert slack.kinds().count("acknowledged") == 1
    winner = slack.row()["acked_by"]
    assert winner in users
    answers = {user: reply for user, reply in zip(users, replies, strict=True)}
    for user, reply in answers.items():
        if user == winner and user not in ("U6", "U7"):
            continue  # a winning click answers through the message itself
        text = reply.text()
        if user == winner:
            assert "You acknowledged A1" in text
        else:
            assert f"<@{winner}> already acknowledged A1" in text
    slack.wait_parent(f"*Acknowledged* by <@{winner}>")
    slack.wait_reply("Acknowledged by")
    assert sum("Acknowledged by" in t for t in slack.thread()) == 1


def test_resolve_and_bisect_are_limited_to_the_routes_resolvers(slack: SlackSide) -> None:
    before = slack.kinds()
    refused = slack.click("alert_resolve", "U3").text()
    assert refused == (":no_entry: Only <@U1>, <!subteam^S0FIXERS> may resolve alerts of "
                       "route `inductor`.")
    assert "may resolve" in slack.command("resolve A1 fixed", user="U3").text()
    assert "may bisect" in slack.command("bisect A1", user="U3").text()
    assert slack.row()["state"] == "open" and slack.kinds() == before
    groups = {c.params.get("usergroup") for c in slack.fake.calls_to("usergroups.users.list")}
    assert groups == {"S0FIXERS"}
    assert "Resolved A1" in slack.command("resolve fixed", user="U2").text()
    assert slack.row()["resolved_by"] == "U2"


def test_bisect_explains_it_is_not_configured(slack: SlackSide) -> None:
    before = slack.kinds()
    assert "Bisect is not configured" in slack.click("alert_bisect", "U1").text()
    assert "Bisect is not configured" in slack.command("bisect A1 inductor_timm").text()
    assert slack.kinds() == before and slack.row()["bisect_status"] is None


def test_losing_or_pointless_actions_are_refused_with_the_current_state(
        slack: SlackSide) -> None:
    assert "A1 is not snoozed" in slack.command("unsnooze").text()
    assert "A1 is not acknowledged" in slack.command("unack").text()
    stale = slack.parent()  # still showing the Acknowledge button
    slack.command("ack", user="U2").text()
    answer = slack.click("alert_ack", "U3", source=stale).text()
    assert "<@U2> already acknowledged A1 at <!date^" in answer
    assert "You already acknowledged A1" in slack.command("ack", user="U2").text()
    slack.command("assign A1 <@U3>").text()
    assert "A1 is already assigned to <@U3>" in slack.command("assign <@U3>").text()
    slack.command("resolve").text()
    assert "A1 is already resolved" in slack.command("ack A1").text()
    assert slack.kinds().count("acknowledged") == 1


# ------------------------------------------------------------------- bad input


BAD_COMMANDS = [
    ("frobnicate A1", "Unknown sub-command `frobnicate`", "`/inductor list [all]`"),
    ("snooze A1 2x", "'2x' is not a duration", "Usage: `/inductor snooze [ID]"),
    ("snooze until tomorrow", "is not a commit sha", "Usage: `/inductor snooze [ID]"),
    ("ack A99", "There is no alert A99", "Usage: `/inductor ack [ID]`"),
    ("show A99", "There is no alert A99", "Usage: `/inductor show ID`"),
    ("resolve A99 gone", "There is no alert A99", "Usage: `/inductor resolve [ID] [reason]`"),
    ("assign A1 <@U0GHOST|ghost>", "There is no Slack user <@U0GHOST>",
     "Usage: `/inductor assign [ID] @user|me`"),
    ("assign A1 @bob", "`@bob` is not a Slack user", "Usage: `/inductor assign [ID] @user|me`"),
    ("list mine", "takes nothing or `all`", "Usage: `/inductor list [all]`"),
    ("ack A1 now", "takes only an alert id", "Usage: `/inductor ack [ID]`"),
]


def test_every_bad_command_says_what_quotes_it_shows_usage_and_changes_nothing(
        slack: SlackSide) -> None:
    before, version = slack.kinds(), slack.row()["version"]
    for text, problem, usage in BAD_COMMANDS:
        answer = slack.command(text).text()
        assert problem in answer, (text, answer)
        quoted = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert f"You typed: `/inductor {quoted}`" in answer, (text, answer)
        assert usage in answer, (text, answer)
    assert slack.kinds() == before and slack.row()["version"] == version


def test_the_id_may_be_left_out_only_when_one_alert_is_open(tmp_path: Path,
                                                           fake: FakeSlack) -> None:
    trunk = broken_trunk(timm_known_until=8)
    break_timm(trunk, 9, 11)  # a second, unrelated breakage: its own alert
    with start(tmp_path, fake, trunk, 8) as side:
        feed(side.bot, trunk, 11, side.running.clock)
        fake.wait_for(lambda: len(fake.messages(CHANNEL)) == 2)
        answer = side.command("ack").text()
        assert "2 alerts are open for this channel (`A2`, `A1`): say which one." in answer
        assert "Usage: `/inductor ack [ID]`" in answer
        elsewhere = side.command("snooze 1h", channel="C0ELSEWHERE").text()
        assert "No alert is open for this channel" in elsewhere
        assert "You typed: `/inductor snooze 1h`" in elsewhere
        assert "acked_by" in side.row(2) and side.row(2)["acked_by"] is None
        assert "You acknowledged A2" in side.command("ack A2").text()


# ------------------------------------------------------------------- signatures


def test_unsigned_stale_or_forged_requests_are_refused(slack: SlackSide) -> None:
    form = urlencode({"command": "/inductor", "text": "ack", "user_id": "U1",
                      "channel_id": CHANNEL, "response_url": slack.fake.response_url("x"),
                      "trigger_id": "1"})
    assert slack.post(form, secret="not-the-secret").status_code == 401
    assert slack.post(form, timestamp=int(time.time()) - 600).status_code == 401
    unsigned = slack.http.post("/slack/events", content=form.encode(),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert unsigned.status_code == 401
    assert slack.row()["acked_by"] is None and slack.fake.responses() == []


# ------------------------------------------------------------------- App Home


def test_app_home_lists_alerts_mine_first_with_links_and_buttons(tmp_path: Path,
                                                                fake: FakeSlack) -> None:
    trunk = broken_trunk(timm_known_until=8)
    break_timm(trunk, 9, 11)
    with start(tmp_path, fake, trunk, 8) as side:
        feed(side.bot, trunk, 11, side.running.clock)
        fake.wait_for(lambda: len(fake.messages(CHANNEL)) == 2)
        side.command("assign A1 <@U2>").text()
        assert side.event({"type": "app_home_opened", "user": "U2", "tab": "home"},
                          "Ev1").status_code == 200
        home = fake.wait_for(lambda: fake.home_view("U2"))
        sections = [b["text"]["text"] for b in home["blocks"] if b["type"] == "section"]
        assert sections[0] == "*2 open alerts* (assigned to you first)"
        assert sections[1].startswith("`A1`") and "<@U2>" in sections[1]
        assert sections[2].startswith("`A2`") and "_unowned_" in sections[2]
        assert all("https://fake-slack.example/archives/C0TEST/p" in s for s in sections[1:])
        actions = [b for b in home["blocks"] if b["type"] == "actions"]
        assert [b["block_id"] for b in actions] == ["alert:1:actions", "alert:2:actions"]

        # Slack's retry of the same event is not handled twice
        assert side.event({"type": "app_home_opened", "user": "U2", "tab": "home"}, "Ev1",
                          retry=1).status_code == 200
        with pytest.raises(TimeoutError):
            fake.wait_for(lambda: len(fake.calls_to("views.publish")) > 1, timeout=0.5)

        # the Home buttons are the alert's buttons: a click acts and re-publishes
        side.click("alert_ack", "U2", source=home, in_home=True)
        republished = fake.wait_for(
            showing(lambda: fake.home_view("U2"), "You acknowledged A1"))
        assert "alert_unack" in text_of(republished)
        assert side.row(1)["acked_by"] == "U2"
        side.click("alert_ack", "U3", source=home, in_home=True)
        refused = fake.wait_for(showing(lambda: fake.home_view("U3"), "already"))
        assert "<@U2> already acknowledged A1" in text_of(refused)
