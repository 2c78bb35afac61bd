"""#12.4: exactly one visible parent per alert, and one copy of each reply, whatever Slack does.

Through the real ``serve`` process and the fake Slack: a post Slack stores seconds after
the bot gave up on it, a SIGKILL while a slow post is in flight, and a channel so busy
that the parent is pages deep in ``conversations.history`` when the bot looks for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.fakes.slack_api import FakeSlack
from tests.support.bot_process import CHANNEL, BotProcess, bot_process, broken
from tests.support.waiting import wait_until

TIMEOUT_S = 2  # SLACK_TIMEOUT of the bot under test


def parents(slack: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in slack.messages(CHANNEL)
            if (m.get("metadata") or {}).get("event_type") == "inductor_alert"]


def recorded_parent(bot: BotProcess) -> str | None:
    rows = bot.query("SELECT ts FROM slack_parents")
    return rows[0][0] if rows else None


def settled_on_one(bot: BotProcess, slack: FakeSlack, timeout: float = 40.0) -> str:
    """Wait until the channel shows exactly one parent, the one the bot recorded."""
    def one() -> str | None:
        shown = parents(slack)
        recorded = recorded_parent(bot)
        return recorded if len(shown) == 1 and shown[0]["ts"] == recorded else None

    return wait_until(one, timeout=timeout, interval=0.1,
                      message=f"one parent, the recorded one\n{bot.process.log_tail()}")


def test_a_post_slack_accepts_after_the_bot_gave_up_is_deleted(tmp_path: Path) -> None:
    with FakeSlack() as slack, bot_process(tmp_path, slack,
                                           env={"SLACK_TIMEOUT": str(TIMEOUT_S)}) as bot:
        slack.fail_next("chat.postMessage", delay=3 * TIMEOUT_S + 1)  # lands after the retry
        bot.feed(broken())
        # the retry posts, then the first post lands: two for a moment, then one
        wait_until(lambda: len(parents(slack)) == 2, timeout=30,
                   message=f"the late post to land\n{bot.process.log_tail()}")
        kept = settled_on_one(bot, slack)
        assert slack.calls_to("chat.delete"), "the twin was not deleted"
        assert [m["ts"] for m in parents(slack)] == [kept]


def test_a_sigkill_during_a_slow_post_leaves_one_parent(tmp_path: Path) -> None:
    with FakeSlack() as slack, bot_process(tmp_path, slack,
                                           env={"SLACK_TIMEOUT": "10"}) as bot:
        slack.fail_next("chat.postMessage", delay=6)
        bot.feed(broken())
        slack.wait_for(lambda: slack.calls_to("chat.postMessage"), timeout=20)
        bot.process.kill()  # the post is in flight: Slack will store it in a few seconds
        bot.process.env["SLACK_TIMEOUT"] = str(TIMEOUT_S)
        bot.process.start()
        settled_on_one(bot, slack, timeout=60)
        wait_until(lambda: bot.query("SELECT count(*) FROM slack_sweeps")[0][0] == 0
                   or len(parents(slack)) == 1 and slack.calls_to("chat.delete"),
                   timeout=30, message="the late copy to be swept")
        assert len(parents(slack)) == 1


def test_the_lookup_pages_through_a_busy_channel(tmp_path: Path) -> None:
    with FakeSlack() as slack, bot_process(tmp_path, slack,
                                           env={"SLACK_TIMEOUT": "4"}) as bot:
        slack.accept_then_drop("chat.postMessage")  # stored, but the bot never hears so
        bot.feed(broken())
        wait_until(lambda: parents(slack), timeout=20, message="the dropped post to be stored")
        with httpx.Client(base_url=slack.url + "/api/", timeout=10) as chat:
            for i in range(450):  # others talk in the channel before the bot looks
                chat.post("chat.postMessage", headers={"Authorization": "Bearer xoxb-human"},
                          json={"channel": CHANNEL, "text": f"chatter {i}"})
        settled_on_one(bot, slack)
        lookups = slack.calls_to("conversations.history")
        assert lookups and any(c.params.get("cursor") for c in lookups), "no cursor followed"
        assert not slack.calls_to("chat.delete"), "posted again instead of finding it"
        top_level = [c for c in slack.calls_to("chat.postMessage")
                     if not c.params.get("thread_ts")]
        assert len(top_level) == 1 + 450


def test_a_thread_reply_in_doubt_ends_as_one_copy(tmp_path: Path) -> None:
    with FakeSlack() as slack, bot_process(tmp_path, slack,
                                           env={"SLACK_TIMEOUT": str(TIMEOUT_S)}) as bot:
        bot.feed(broken())
        parent_ts = settled_on_one(bot, slack)
        [(alert_id,)] = bot.query("SELECT id FROM alerts")
        slack.fail_next("chat.postMessage", delay=3 * TIMEOUT_S + 1)  # the next reply
        bot.command(f"ack A{alert_id}", "ack")

        def copies() -> dict[int, list[str]]:
            by_event: dict[int, list[str]] = {}
            for m in slack.replies(CHANNEL, parent_ts):
                meta = m.get("metadata") or {}
                if meta.get("event_type") == "inductor_alert_event":
                    by_event.setdefault(meta["event_payload"]["event_id"], []).append(m["ts"])
            return by_event

        wait_until(lambda: any(len(ts) == 2 for ts in copies().values()), timeout=30,
                   message=f"the late reply to land\n{bot.process.log_tail()}")

        def one_each() -> bool:
            recorded = dict(bot.query("SELECT event_id, ts FROM slack_replies "
                                      "WHERE state = 'sent'"))
            shown = copies()
            return bool(shown) and all(ts == [recorded.get(e)] for e, ts in shown.items())

        wait_until(one_each, timeout=30,
                   message=f"one copy of each reply, the recorded one\n{bot.process.log_tail()}")
        assert slack.calls_to("chat.delete")
