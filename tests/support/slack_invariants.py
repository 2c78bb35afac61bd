"""What Slack must hold once the outbox drained: one parent per alert, one reply per event.

Read from the fake Slack's channels (by message metadata) and checked against the bot's
database, so doubled or lost messages fail whatever fault caused them.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from tests.fakes.slack_api import FakeSlack

OUTBOX_PENDING = (
    "SELECT (SELECT count(*) FROM alerts a LEFT JOIN slack_parents p ON p.alert_id = a.id "
    "WHERE p.ts IS NULL OR p.rendered_version < a.version), "
    "(SELECT count(*) FROM alert_events e LEFT JOIN slack_replies r ON r.event_id = e.id "
    "WHERE r.event_id IS NULL OR r.state = 'pending')"
)


class Queryable(Protocol):
    def execute(self, sql: str, parameters: Any = ...) -> sqlite3.Cursor: ...


def outbox_empty(db: Queryable) -> bool:
    """Every alert version drawn in Slack and every timeline event settled.

    Judged from the full tables; once empty, the pending-work tables the sender reads
    (kept by triggers) must agree, or the sender would be blind to (or stuck on) work.
    """
    parents, replies = db.execute(OUTBOX_PENDING).fetchone()
    if parents or replies:
        return False
    queued = db.execute("SELECT (SELECT count(*) FROM outbox_parents), "
                        "(SELECT count(*) FROM outbox_events)").fetchone()
    assert tuple(queued) == (0, 0), f"pending-work tables disagree: {tuple(queued)}"
    return True


def _meta(message: Mapping[str, Any], key: str) -> Any:
    return ((message.get("metadata") or {}).get("event_payload") or {}).get(key)


def assert_delivered_once(fake: FakeSlack, db: Queryable,
                          channels: Mapping[str, str]) -> dict[int, str]:
    """Check every invariant; ``channels`` maps route name to channel. Returns parent ts's."""
    alerts = dict(db.execute("SELECT id, route FROM alerts").fetchall())
    recorded = dict(db.execute("SELECT alert_id, ts FROM slack_parents").fetchall())
    sent = dict(db.execute("SELECT event_id, ts FROM slack_replies WHERE state = 'sent'")
                .fetchall())
    event_alert = dict(db.execute("SELECT id, alert_id FROM alert_events").fetchall())
    parents: dict[int, str] = {}
    replied: list[int] = []
    for route, channel in channels.items():
        messages = fake.messages(channel)
        counts = Counter(_meta(m, "alert_id") for m in messages)
        assert None not in counts, f"a top-level message without alert metadata in {channel}"
        assert all(n == 1 for n in counts.values()), f"doubled parents in {channel}: {counts}"
        assert set(counts) == {a for a, r in alerts.items() if r == route}, (counts, alerts)
        for message in messages:
            alert_id = _meta(message, "alert_id")
            assert recorded[alert_id] == message["ts"], "the database knows the parent's ts"
            parents[alert_id] = message["ts"]
            replies = fake.replies(channel, message["ts"])
            events = [_meta(r, "event_id") for r in replies]
            assert None not in events, "a thread reply without event metadata"
            assert len(events) == len(set(events)), f"an event replied twice: {events}"
            assert events == sorted(events), f"thread replies out of timeline order: {events}"
            for reply, event_id in zip(replies, events, strict=True):
                assert event_alert[event_id] == alert_id, "a reply in another alert's thread"
                assert sent.get(event_id) == reply["ts"], f"event {event_id} not recorded sent"
            replied.extend(events)
    assert sorted(sent) == sorted(replied), "every reply recorded as sent is in Slack"
    assert fake.violations == [], fake.violations[:5]
    return parents
