"""The Slack outbox's bookkeeping in SQLite: what Slack still owes, what it already has.

Nothing here talks to Slack (``bot/slack/sender.py`` does). The sender asks what is due,
marks a post as started before calling Slack, and records the ``ts`` after; the marks are
what let a restart find a message Slack accepted before the process died, instead of
posting it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlite_utils

from bot.store.codec import from_iso, to_iso


@dataclass(frozen=True, slots=True)
class ParentDue:
    alert_id: int
    version: int
    channel: str | None
    ts: str | None
    rendered_version: int
    post_started_at: datetime | None
    console: bool = False  # shown only in console mode: it exists nowhere in Slack


@dataclass(frozen=True, slots=True)
class ReplyDue:
    event_id: int
    alert_id: int
    kind: str
    channel: str
    parent_ts: str
    covered_event_id: int
    post_started_at: datetime | None


def parents_due(db: sqlite_utils.Database, now: datetime) -> list[ParentDue]:
    """Alerts without a parent message, or whose parent shows an older version.

    Read from ``outbox_parents``: the cost follows the alerts with work, not every alert
    ever opened. Alerts still waiting for their first message come first: a new alert
    must not queue behind the paced edits of older ones (an edit is late by as much, and
    notifies nobody).
    """
    rows = db.execute(
        "SELECT a.id, a.version, p.channel, p.ts, coalesce(p.rendered_version, 0), "
        "p.post_started_at, coalesce(p.console, 0) FROM outbox_parents o "
        "JOIN alerts a ON a.id = o.alert_id LEFT JOIN slack_parents p ON p.alert_id = a.id "
        "WHERE (p.alert_id IS NULL OR p.ts IS NULL OR p.rendered_version < a.version) "
        "AND NOT EXISTS (SELECT 1 FROM slack_failures f WHERE f.target = 'parent:' || a.id "
        "AND f.retry_at > ?) ORDER BY p.ts IS NOT NULL, a.id LIMIT 50",
        [to_iso(now)],
    ).fetchall()
    return [ParentDue(r[0], r[1], r[2], r[3], r[4], from_iso(r[5]), bool(r[6])) for r in rows]


def first_post_due(db: sqlite_utils.Database, now: datetime) -> bool:
    """Whether an alert waits for its first message (the sender serves those before replies)."""
    return any(due.ts is None for due in parents_due(db, now))


def ensure_parent(db: sqlite_utils.Database, alert_id: int, channel: str) -> None:
    db.execute("INSERT OR IGNORE INTO slack_parents (alert_id, channel) VALUES (?, ?)",
               [alert_id, channel])


def mark_parent_started(db: sqlite_utils.Database, alert_id: int, covered_event_id: int,
                        now: datetime, seen_started_at: datetime | None = None) -> bool:
    """Claim the post: note, before calling Slack, that it may be about to exist.

    Compare-and-set on what the caller saw (no ts, and ``seen_started_at``): of two
    processes that both read the parent as due, only one gets True and posts; the
    other finds the row changed and leaves it (Grafana OnCall's ``slack_message_sent``).
    """
    cursor = db.execute(
        "UPDATE slack_parents SET post_started_at = ?, covered_event_id = ? "
        "WHERE alert_id = ? AND ts IS NULL AND post_started_at IS ?",
        [to_iso(now), covered_event_id, alert_id, to_iso(seen_started_at)])
    return cursor.rowcount == 1


def record_parent(db: sqlite_utils.Database, alert_id: int, ts: str, version: int,
                  covered_event_id: int, now: datetime, console: bool = False) -> None:
    """Store the parent's ts; ``covered_event_id`` is the newest event the post already shows.

    ``console`` marks a parent only printed in console mode, never sent to Slack.
    """
    db.execute(
        "UPDATE slack_parents SET ts = ?, rendered_version = max(rendered_version, ?), "
        "posted_at = coalesce(posted_at, ?), updated_at = ?, "
        "covered_event_id = max(covered_event_id, ?), console = ? WHERE alert_id = ?",
        [ts, version, to_iso(now), to_iso(now), covered_event_id, int(console), alert_id],
    )
    _parent_settled(db, alert_id)


def _parent_settled(db: sqlite_utils.Database, alert_id: int) -> None:
    """Drop the alert from ``outbox_parents`` once its posted parent shows its version.

    Checked against the rows, not the caller's render: a version bumped meanwhile (the
    trigger re-adds nothing to a row already there) keeps the alert pending.
    """
    db.execute(
        "DELETE FROM outbox_parents WHERE alert_id = ? AND EXISTS (SELECT 1 FROM alerts a "
        "JOIN slack_parents p ON p.alert_id = a.id WHERE a.id = ? AND p.ts IS NOT NULL "
        "AND p.rendered_version >= a.version)", [alert_id, alert_id])


def forget_console_parent(db: sqlite_utils.Database, alert_id: int) -> None:
    """Drop a parent that was only printed in console mode: the next post is a fresh one."""
    db.execute("DELETE FROM slack_parents WHERE alert_id = ? AND console = 1", [alert_id])


def forget_console_parents(db: sqlite_utils.Database) -> int:
    """Drop the console-only parents of alerts still open; returns how many.

    Once Slack is configured these are posted afresh, in their route's channel: editing
    them would send ``chat.update`` for a ts Slack never issued. Resolved alerts keep
    theirs (nothing new to say) until they change again.
    """
    cursor = db.execute(
        "DELETE FROM slack_parents WHERE console = 1 AND alert_id IN "
        "(SELECT id FROM alerts WHERE state != 'resolved')")
    return cursor.rowcount


def record_update(db: sqlite_utils.Database, alert_id: int, version: int, now: datetime) -> None:
    """Record an edit; ``max`` keeps a slow, older render from undoing a newer one's record."""
    db.execute(
        "UPDATE slack_parents SET rendered_version = max(rendered_version, ?), updated_at = ? "
        "WHERE alert_id = ?",
        [version, to_iso(now), alert_id],
    )
    _parent_settled(db, alert_id)


def posted_parent(db: sqlite_utils.Database, alert_id: int) -> tuple[str, str] | None:
    """The alert's parent message as (channel, ts), once it is posted."""
    row = db.execute(
        "SELECT channel, ts FROM slack_parents WHERE alert_id = ? AND ts IS NOT NULL",
        [alert_id]).fetchone()
    return None if row is None else (row[0], row[1])


def forget_parent(db: sqlite_utils.Database, alert_id: int) -> None:
    """The parent was deleted in Slack: post a new one on the next pass."""
    db.execute("UPDATE slack_parents SET ts = NULL, post_started_at = NULL, rendered_version = 0 "
               "WHERE alert_id = ?", [alert_id])


def max_event_id(db: sqlite_utils.Database, alert_id: int) -> int:
    row = db.execute("SELECT coalesce(max(id), 0) FROM alert_events WHERE alert_id = ?",
                     [alert_id]).fetchone()
    return int(row[0])


def replies_due(db: sqlite_utils.Database, now: datetime, limit: int = 100,
                console: bool = False) -> list[ReplyDue]:
    """Events with no settled reply yet, oldest first, for alerts whose parent is posted.

    Read from ``outbox_events``, so the cost follows the pending events. An event waits
    while it, or an earlier event of its alert, is backing off: thread replies arrive in
    timeline order. Outside console mode a parent only printed in console mode has no
    thread to reply in.
    """
    rows = db.execute(
        "SELECT e.id, e.alert_id, e.kind, p.channel, p.ts, p.covered_event_id, "
        "r.post_started_at FROM outbox_events o JOIN alert_events e ON e.id = o.event_id "
        "JOIN slack_parents p ON p.alert_id = o.alert_id AND p.ts IS NOT NULL "
        "AND (p.console = 0 OR ?) "
        "LEFT JOIN slack_replies r ON r.event_id = o.event_id "
        "WHERE (r.event_id IS NULL OR r.state = 'pending') ORDER BY o.event_id",
        [int(console)],
    )
    held = _backing_off(db, now)
    due: list[ReplyDue] = []
    for r in rows:
        first_held = held.get(r[1])
        if first_held is not None and r[0] >= first_held:
            continue
        due.append(ReplyDue(r[0], r[1], r[2], r[3], r[4], r[5], from_iso(r[6])))
        if len(due) >= limit:
            break
    return due


def _backing_off(db: sqlite_utils.Database, now: datetime) -> dict[int, int]:
    """alert id -> its oldest event whose reply is waiting out a failure."""
    rows = db.execute(
        "SELECT o.alert_id, min(o.event_id) FROM slack_failures f JOIN outbox_events o "
        "ON o.event_id = CAST(substr(f.target, 7) AS INTEGER) "
        "WHERE f.target LIKE 'reply:%' AND f.retry_at > ? GROUP BY o.alert_id", [to_iso(now)])
    return {row[0]: row[1] for row in rows}


def settle_reply(db: sqlite_utils.Database, event_id: int, alert_id: int, state: str,
                 now: datetime, ts: str | None = None) -> None:
    """Close an event's reply as ``sent``, ``skipped`` or ``superseded`` (exactly once)."""
    db.execute(
        "INSERT INTO slack_replies (event_id, alert_id, state, ts, done_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (event_id) DO UPDATE SET state = excluded.state, ts = excluded.ts, "
        "done_at = excluded.done_at",
        [event_id, alert_id, state, ts, to_iso(now)],
    )
    db.execute("DELETE FROM slack_failures WHERE target = ?", [f"reply:{event_id}"])
    db.execute("DELETE FROM outbox_events WHERE event_id = ?", [event_id])


def start_reply(db: sqlite_utils.Database, event_id: int, alert_id: int, now: datetime,
                seen_started_at: datetime | None = None) -> bool:
    """Claim the reply's post, compare-and-set like ``mark_parent_started``; True if ours."""
    cursor = db.execute(
        "INSERT INTO slack_replies (event_id, alert_id, state, post_started_at) "
        "VALUES (?, ?, 'pending', ?) ON CONFLICT (event_id) DO UPDATE SET "
        "post_started_at = excluded.post_started_at WHERE slack_replies.state = 'pending' "
        "AND slack_replies.post_started_at IS ?",
        [event_id, alert_id, to_iso(now), to_iso(seen_started_at)],
    )
    return cursor.rowcount == 1


@dataclass(frozen=True, slots=True)
class Sweep:
    target: str
    alert_id: int
    event_id: int | None
    channel: str
    since: datetime
    until: datetime


def watch_for_twin(db: sqlite_utils.Database, target: str, alert_id: int, event_id: int | None,
                   channel: str, since: datetime, first_at: datetime, until: datetime) -> None:
    """Re-read the channel for a late copy of ``target`` from ``first_at`` until ``until``."""
    db.execute(
        "INSERT INTO slack_sweeps (target, alert_id, event_id, channel, since, next_at, until) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
        "since = min(since, excluded.since), until = max(until, excluded.until), "
        "next_at = min(next_at, excluded.next_at)",
        [target, alert_id, event_id, channel, to_iso(since), to_iso(first_at), to_iso(until)])


def sweeps_due(db: sqlite_utils.Database, now: datetime, limit: int = 5) -> list[Sweep]:
    rows = db.execute("SELECT target, alert_id, event_id, channel, since, until FROM slack_sweeps "
                      "WHERE next_at <= ? ORDER BY next_at LIMIT ?", [to_iso(now), limit])
    return [Sweep(r[0], r[1], r[2], r[3], from_iso(r[4]), from_iso(r[5]))  # type: ignore[arg-type]
            for r in rows.fetchall()]


def next_sweep(db: sqlite_utils.Database, target: str, at: datetime | None) -> None:
    """Schedule the sweep's next look at ``at``; None ends it."""
    if at is None:
        db.execute("DELETE FROM slack_sweeps WHERE target = ?", [target])
    else:
        db.execute("UPDATE slack_sweeps SET next_at = ? WHERE target = ?", [to_iso(at), target])


def reply_ts(db: sqlite_utils.Database, event_id: int) -> str | None:
    """The recorded ts of an event's thread reply, once sent."""
    row = db.execute("SELECT ts FROM slack_replies WHERE event_id = ? AND state = 'sent'",
                     [event_id]).fetchone()
    return None if row is None else row[0]


def later_event_of_kind(db: sqlite_utils.Database, alert_id: int, event_id: int,
                        kinds: tuple[str, ...]) -> bool:
    marks = ",".join("?" * len(kinds))
    row = db.execute(
        f"SELECT 1 FROM alert_events WHERE alert_id = ? AND id > ? AND kind IN ({marks}) LIMIT 1",
        [alert_id, event_id, *kinds]).fetchone()
    return row is not None


def sent_of_kind(db: sqlite_utils.Database, alert_id: int,
                 kind: str) -> tuple[datetime | None, int]:
    """When the alert's last reply of ``kind`` was sent, and how many were sent."""
    row = db.execute(
        "SELECT max(r.done_at), count(*) FROM slack_replies r "
        "JOIN alert_events e ON e.id = r.event_id "
        "WHERE r.alert_id = ? AND e.kind = ? AND r.state = 'sent'", [alert_id, kind]).fetchone()
    return (from_iso(row[0]), int(row[1])) if row else (None, 0)


def record_failure(db: sqlite_utils.Database, target: str, channel: str | None, error: str,
                   retry_in: timedelta, permanent: bool, now: datetime) -> int:
    """Remember a failed delivery and when to try again; returns the attempt count."""
    db.execute(
        "INSERT INTO slack_failures (target, channel, error, attempts, first_at, last_at, "
        "retry_at, permanent) VALUES (?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET "
        "error = excluded.error, attempts = attempts + 1, last_at = excluded.last_at, "
        "retry_at = excluded.retry_at, permanent = excluded.permanent",
        [target, channel, error, to_iso(now), to_iso(now), to_iso(now + retry_in),
         int(permanent)],
    )
    row = db.execute("SELECT attempts FROM slack_failures WHERE target = ?", [target]).fetchone()
    return int(row[0])


def retry_permanent_now(db: sqlite_utils.Database, now: datetime) -> int:
    """Make every failure that waits for a human due now; returns how many.

    A restart usually follows the fix (a channel configured, the bot invited, a new
    token), so what failed for good is tried again at once, not a retry period later.
    """
    cursor = db.execute("UPDATE slack_failures SET retry_at = ? WHERE permanent = 1 "
                        "AND retry_at > ?", [to_iso(now), to_iso(now)])
    return cursor.rowcount


def failure_attempts(db: sqlite_utils.Database, target: str) -> int:
    row = db.execute("SELECT attempts FROM slack_failures WHERE target = ?", [target]).fetchone()
    return 0 if row is None else int(row[0])


def permanent_failures(db: sqlite_utils.Database) -> list[tuple[str, str | None, str]]:
    """(target, channel, error) of failures that need a human; the table holds only failures."""
    return [(r[0], r[1], r[2]) for r in db.execute(
        "SELECT target, channel, error FROM slack_failures WHERE permanent = 1 "
        "ORDER BY first_at LIMIT 20")]


def clear_failure(db: sqlite_utils.Database, target: str) -> None:
    db.execute("DELETE FROM slack_failures WHERE target = ?", [target])


def backlog(db: sqlite_utils.Database) -> dict[str, object]:
    """For /healthz: how much Slack still owes and which failures need a human.

    Counts the pending-work tables, so its cost follows the backlog, not the history.
    """
    parents = db.execute("SELECT count(*) FROM outbox_parents").fetchone()[0]
    replies = db.execute("SELECT count(*) FROM outbox_events").fetchone()[0]
    failures = [
        {"target": r[0], "channel": r[1], "error": r[2], "attempts": r[3], "since": r[4],
         "retry_at": r[5], "permanent": bool(r[6])}
        for r in db.execute("SELECT target, channel, error, attempts, first_at, retry_at, "
                            "permanent FROM slack_failures ORDER BY first_at LIMIT 20")
    ]
    return {"parents_pending": parents, "events_pending": replies, "failures": failures}
