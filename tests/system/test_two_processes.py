"""#13: two ``serve`` processes on one database never both post, even past their lease.

Slack is slow (a post takes longer than the sender lease) and answers 429 with a
``Retry-After`` longer than the lease, so the process sending loses its lease in the
middle of a pass and the other takes over. The claims are compare-and-set in SQLite and
the lease is renewed before every Slack call: the channel ends with exactly one parent
per alert and one copy of each thread reply.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from tests.fakes.slack_api import FakeSlack
from tests.support.bot_process import CHANNEL, BotProcess, broken
from tests.support.slack_invariants import outbox_empty
from tests.support.waiting import wait_until

LEASE_S = 2


def copies(slack: FakeSlack) -> tuple[Counter[int], Counter[int]]:
    """How many messages carry each alert's parent metadata, and each event's reply."""
    parents: Counter[int] = Counter()
    replies: Counter[int] = Counter()
    for top in slack.messages(CHANNEL):
        meta: dict[str, Any] = top.get("metadata") or {}
        if meta.get("event_type") == "inductor_alert":
            parents[meta["event_payload"]["alert_id"]] += 1
            for reply in slack.replies(CHANNEL, top["ts"]):
                rmeta = reply.get("metadata") or {}
                if rmeta.get("event_type") == "inductor_alert_event":
                    replies[rmeta["event_payload"]["event_id"]] += 1
    return parents, replies


def test_two_processes_slow_slack_and_a_lapsed_lease_post_once(tmp_path: Path) -> None:
    env = {"SENDER_LEASE_TTL": str(LEASE_S), "SLACK_TIMEOUT": "10"}
    with FakeSlack() as slack:
        first = BotProcess(tmp_path, slack, env=env, name="first")
        second = BotProcess(tmp_path, slack, env=env, name="second", db_path=first.db_path)
        first.start()
        second.start(migrate=False)
        try:
            # the parent takes twice the lease to be answered; then replies meet a 429
            # whose Retry-After is four leases long, in the middle of the sender's pass
            slack.fail_next("chat.postMessage", delay=2 * LEASE_S)
            slack.fail_next("chat.postMessage", status=429, retry_after=4 * LEASE_S, times=2)
            first.feed(broken())
            first.wait_for_parent(timeout=30)
            [(alert_id,)] = first.query("SELECT id FROM alerts")
            second.command(f"ack A{alert_id}", "ack-2")
            first.command(f"unack A{alert_id}", "unack-1")
            second.command(f"ack A{alert_id}", "ack-3")

            def settled() -> bool:
                with first.db() as con:
                    return outbox_empty(con)

            wait_until(settled, timeout=90, interval=0.2,
                       message=f"the outbox to drain\n{first.process.log_tail()}\n"
                               f"{second.process.log_tail()}")
            parents, replies = copies(slack)
            assert dict(parents) == {alert_id: 1}, parents
            sent = {r[0] for r in first.query("SELECT event_id FROM slack_replies "
                                              "WHERE state = 'sent'")}
            assert set(replies) == sent and set(replies.values()) == {1}, replies
            logs = first.process.log_path.read_text() + second.process.log_path.read_text()
            assert "pass abandoned" in logs, "no pass outlived its lease: the test proved nothing"
        finally:
            first.stop()
            second.stop()
