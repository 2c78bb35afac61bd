"""The slash command (``/inductor``) over signed HTTP against the running bot.

The real bot serves ``/slack/events`` on 127.0.0.1 and talks to a fake Slack; each test
opens a real alert by ingesting a broken trunk, then acts as Slack would: signed form
posts, ``response_url`` answers recorded by the fake, and the alert's parent message and
thread read back from the fake.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import (
    CHANNEL,
    break_timm,
    broken_trunk,
    feed,
)
from tests.support.slack_side import (
    SlackSide,
    start,
    text_of,
)


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

    assert "You took A1" in slack.command("assign me").text()
    slack.wait_parent("*Assigned* to <@U1>")
    assert "Assigned A1 to <@U2>; they were notified" in \
        slack.command("assign A1 <@U2|bob>", user="U3").text()
    slack.wait_parent("*Assigned* to <@U2>")
    assert slack.row()["assigned_by"] == "U3"
    assert "<@U2>: *carol* assigned this alert to you" in slack.wait_reply("assigned this")

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
    assert "`A1`" in listed and "— unowned, open for" in listed
    assert "<https://fake-slack.example/archives/C0TEST/p" in listed  # the thread
    elsewhere = slack.command("list", channel="C0ELSEWHERE").text()
    assert "No open alerts for this channel" in elsewhere
    assert "`A1`" in slack.command("list all", channel="C0ELSEWHERE").text()

    reply = slack.command("show A1")
    [answer] = slack.fake.wait_for(lambda: slack.fake.responses(reply.key))
    blocks = json.dumps(answer["blocks"])
    assert "alert_ack" in blocks and "Open the alert's thread" in blocks
    assert answer["response_type"] == "ephemeral"


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


def test_retry_is_gated_like_bisect_and_needs_a_token(slack: SlackSide) -> None:
    before = len(slack.kinds())
    assert "Only <@U1>, <!subteam^S0FIXERS> may retry jobs of" in \
        slack.command("retry", user="U5").text()
    assert "Retrying needs `GITHUB_TOKEN`" in slack.command("retry A1", user="U2").text()
    assert slack.kinds()[before:] == [], "nothing was recorded"
    assert "`/inductor retry [ID]`" in slack.command("help").text()
