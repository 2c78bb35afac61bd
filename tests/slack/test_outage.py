"""Slack outages the sender must ride out: 429 storms, 5xx, timeouts longer than the client's.

The bot's real sender thread talks to the fake Slack while an incident unfolds; whatever
the fault, once Slack answers again the channel holds one parent per alert and one
reply per event, in timeline order, and no two calls to the channel came closer than
the pacing (or a ``Retry-After``) allows.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from bot.runtime import Bot
from bot.slack.client import InDoubt, Transient, WebApi
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import (
    CHANNEL,
    FAST_SENDER,
    HF,
    TIMM,
    break_timm,
    broken_trunk,
    feed,
    slack_settings,
)
from tests.support.server import Clock, settings_for, started_bot
from tests.support.slack_invariants import assert_delivered_once, outbox_empty
from tests.support.trunk import Trunk
from tests.support.waiting import wait_until

CHANNELS = {"inductor": CHANNEL}
# calls Slack limits per channel (about one a second); reads have their own, wider limits
# and are not paced, so a lookup through many pages of history is not slowed to 1 page/s
CHANNEL_CALLS = ("chat.postMessage", "chat.update", "chat.delete")


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@contextmanager
def bot_for(tmp_path: Path, slack: FakeSlack, **sender: Any) -> Iterator[tuple[Bot, Clock]]:
    clock = Clock()
    settings = settings_for(tmp_path, slack_timeout=0.5, **slack_settings(slack.url))
    bot = started_bot(settings, clock, {**FAST_SENDER, **sender})
    try:
        yield bot, clock
    finally:
        bot.stop()


def incident(bot: Bot, clock: Clock, trunk: Trunk) -> None:
    """After the opening: extended twice, a second job joins, both recover."""
    for newest in (8, 9):
        feed(bot, trunk, newest, clock)
    break_timm(trunk, 5, 9)
    feed(bot, trunk, 9, clock)
    for i in (10, 11):
        trunk.set(i, HF[1], "success")
        trunk.set(i, TIMM[0], "success")
    feed(bot, trunk, 11, clock)


def settled(bot: Bot) -> bool:
    return outbox_empty(bot.store.db)


def test_a_429_storm_is_waited_out_with_retry_after_and_pacing(tmp_path: Path,
                                                               slack: FakeSlack) -> None:
    trunk = broken_trunk(timm_known_until=4)
    with bot_for(tmp_path, slack, pace_s=0.2) as (bot, clock):
        feed(bot, trunk, 7, clock)
        wait_until(lambda: settled(bot), message="parent posted")
        opened = len(slack.calls)
        slack.fail_next("chat.postMessage", status=429, retry_after=1, times=2)
        slack.fail_next("chat.update", status=429, retry_after=1)
        incident(bot, clock, trunk)
        wait_until(lambda: settled(bot), timeout=30, message="the backlog delivered")
        parents = assert_delivered_once(slack, bot.store.db, CHANNELS)
        texts = [r["text"].lower() for r in slack.replies(CHANNEL, parents[1])]
        assert len(texts) >= 3 and "resolved" in texts[-1], texts
    calls = [c for c in slack.calls[opened:] if c.method in CHANNEL_CALLS]
    gaps = [b.at - a.at for a, b in zip(calls, calls[1:], strict=False)]
    assert min(gaps) >= 0.19, f"paced at 0.2 s per channel: {gaps}"
    limited = ([c for c in calls if c.method == "chat.postMessage"][:2]
               + [c for c in calls if c.method == "chat.update"][:1])
    for call in limited:  # the fake answered these with 429, Retry-After: 1
        later = [c.at for c in calls if c.at > call.at]
        assert not later or later[0] - call.at >= 0.95, "Retry-After honoured"


def test_timeouts_longer_than_the_client_timeout_never_double_a_message(
        tmp_path: Path, slack: FakeSlack) -> None:
    """Slack stores a post after the bot stopped waiting for it (0.7 s > timeout 0.5 s).

    Retrying as soon as the backoff allows would find nothing yet and post a second
    parent; the sender waits out the doubt, finds the post and records it instead.
    """
    trunk = broken_trunk(timm_known_until=4)
    with bot_for(tmp_path, slack, in_doubt_s=1.0) as (bot, clock):
        slack.fail_next("chat.postMessage", delay=0.7)  # the parent
        feed(bot, trunk, 7, clock)
        wait_until(lambda: settled(bot), timeout=15, message="the parent found and recorded")
        slack.fail_next("chat.postMessage", delay=0.7)  # the reply for the joining job
        slack.fail_next("chat.update", delay=0.7)  # edits are idempotent: simply retried
        break_timm(trunk, 5, 7)
        feed(bot, trunk, 8, clock)  # 20 minutes on: past the quiet first minutes
        wait_until(lambda: settled(bot), timeout=15, message="the reply found and recorded")
        assert_delivered_once(slack, bot.store.db, CHANNELS)
        posts = slack.calls_to("chat.postMessage")
        parent = slack.messages(CHANNEL)[0]
        assert len(posts) == 1 + len(slack.replies(CHANNEL, parent["ts"])), \
            "each timed-out post was found, not sent again"
        assert slack.calls_to("conversations.history") and slack.calls_to("conversations.replies")
        assert bot.store.db.execute("SELECT count(*) FROM slack_failures").fetchone()[0] == 0


def test_a_reply_that_reached_slack_stays_sent_when_a_later_extension_supersedes_it(
        tmp_path: Path, slack: FakeSlack) -> None:
    """Found by the crash test: a started reply was settled "superseded" without looking.

    Slack kept the post (the answer was lost), then the streak grew again before the
    retry; the retry marked the first reply superseded although it was in the thread.
    """
    trunk = broken_trunk(timm_known_until=4)
    with bot_for(tmp_path, slack, in_doubt_s=0.3) as (bot, clock):
        feed(bot, trunk, 7, clock)
        wait_until(lambda: settled(bot), message="parent posted")
        slack.accept_then_drop("chat.postMessage")  # the "extended" reply lands, unanswered
        feed(bot, trunk, 8, clock)
        wait_until(lambda: bot.store.db.execute(
            "SELECT count(*) FROM slack_failures WHERE target LIKE 'reply:%'").fetchone()[0],
            message="the lost answer recorded as a failure")
        feed(bot, trunk, 9, clock)  # a later extension, before the retry
        [first] = [row[0] for row in bot.store.db.execute(
            "SELECT id FROM alert_events WHERE kind = 'extended' ORDER BY id LIMIT 1")]
        wait_until(lambda: bot.store.db.execute(
            "SELECT state FROM slack_replies WHERE event_id = ?", [first]).fetchone() == ("sent",),
            message="the first extension's reply recorded as sent")
        parent = slack.messages(CHANNEL)[0]
        replies = slack.replies(CHANNEL, parent["ts"])
        assert [r["metadata"]["event_payload"]["event_id"] for r in replies] == [first]
        ts = bot.store.db.execute("SELECT ts FROM slack_replies WHERE event_id = ?",
                                  [first]).fetchone()[0]
        assert ts == replies[0]["ts"]


def test_the_client_tells_an_unanswered_call_from_one_never_sent(slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", delay=0.6)
    with pytest.raises(InDoubt):
        WebApi("xoxb-test", slack.url + "/api/", timeout=0.3).call(
            "chat.postMessage", channel=CHANNEL, text="slow")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(Transient) as refused:
        WebApi("xoxb-test", f"http://127.0.0.1:{port}/api/", timeout=0.3).call(
            "chat.postMessage", channel=CHANNEL, text="nobody listens")
    assert not isinstance(refused.value, InDoubt)


def test_slack_timeout_is_a_setting_used_by_the_client_and_the_sender(tmp_path: Path) -> None:
    assert load_settings({"SLACK_TIMEOUT": "2.5"}).slack_timeout == 2.5
    assert load_settings({}).slack_timeout == 10.0
    for bad in ("soon", "0", "-1"):
        with pytest.raises(ConfigError, match="SLACK_TIMEOUT"):
            load_settings({"SLACK_TIMEOUT": bad})
    bot = Bot(replace(settings_for(tmp_path, slack_timeout=2.5),
                      **slack_settings("http://127.0.0.1:9")))
    try:
        assert isinstance(bot.slack_api, WebApi) and bot.slack_api.client.timeout == 2.5
        assert bot.sender.in_doubt_s == 2.5
    finally:
        bot.store.close()
