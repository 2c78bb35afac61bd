"""Alerts, their member jobs and timelines: read as domain data, decisions applied."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain.alerts import (
    Decision,
    Join,
    Member,
    NoChange,
    Open,
    OpenAlert,
    Recover,
    Update,
    alert_range,
)
from bot.domain.manual_resolve import ResolvedByHand
from bot.domain.model import CellStatus, PlacedCell
from bot.domain.route import Route
from bot.domain.streak import Streak
from bot.store.codec import from_iso, to_iso

MEMBER_COLUMNS = (
    "alert_id, job_key, streak, first_failing_sha, first_failing_pos, newest_failing_sha, "
    "newest_failing_pos, newest_failing_time, last_green_sha, last_green_pos, recovered"
)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    id: int
    alert_id: int
    kind: str
    actor: str | None
    at: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlertHead:
    """What callers look up by alert id: where it belongs, whether it is open, its version."""

    id: int
    route: str
    repo: str
    branch: str
    state: str
    version: int


def head(db: sqlite_utils.Database, alert_id: int) -> AlertHead | None:
    row = db.execute("SELECT id, route, repo, branch, state, version FROM alerts WHERE id = ?",
                     [alert_id]).fetchone()
    return None if row is None else AlertHead(*row)


def _member(row: tuple) -> Member:
    (alert_id, job_key, streak, ff_sha, ff_pos, nf_sha, nf_pos, nf_time, lg_sha, lg_pos,
     recovered) = row
    return Member(
        alert_id=alert_id,
        job_key=job_key,
        streak=streak,
        first_failing=PlacedCell(ff_pos, ff_sha, CellStatus.FAILURE),
        newest_failing=PlacedCell(nf_pos, nf_sha, CellStatus.FAILURE, from_iso(nf_time)),
        last_green=None if lg_sha is None else PlacedCell(lg_pos, lg_sha, CellStatus.SUCCESS),
        recovered=bool(recovered),
    )


def members(db: sqlite_utils.Database, alert_id: int) -> list[Member]:
    return [_member(row) for row in db.execute(
        f"SELECT {MEMBER_COLUMNS} FROM alert_jobs WHERE alert_id = ? ORDER BY joined_at, job_key",
        [alert_id])]


def open_alerts(db: sqlite_utils.Database, route: str) -> list[OpenAlert]:
    """Open streak alerts of a route with their members (there are few at any time)."""
    ids = [row[0] for row in db.execute(
        "SELECT id FROM alerts WHERE route = ? AND state != 'resolved' AND kind = 'streak' "
        "ORDER BY id", [route])]
    return [OpenAlert(alert_id, tuple(members(db, alert_id))) for alert_id in ids]


def resolved_by_hand(db: sqlite_utils.Database, route: str, job_key: str,
                     limit: int = 5) -> list[ResolvedByHand]:
    """The route's alerts a person resolved while ``job_key`` still failed in them, newest
    first (``bot.domain.manual_resolve`` decides what a new failure of the job means)."""
    columns = ", ".join(f"j.{c.strip()}" for c in MEMBER_COLUMNS.split(","))
    rows = db.execute(
        f"SELECT {columns} FROM alerts a JOIN alert_jobs j ON j.alert_id = a.id "
        "WHERE a.route = ? AND a.state = 'resolved' AND a.kind = 'streak' "
        "AND a.resolved_by IS NOT NULL AND j.job_key = ? AND j.recovered = 0 "
        "ORDER BY a.resolved_at DESC, a.id DESC LIMIT ?", [route, job_key, limit])
    return [ResolvedByHand(row[0], _member(row)) for row in rows]


def reopen(db: sqlite_utils.Database, alert_id: int, job_key: str, streak: Streak,
           now: datetime) -> bool:
    """Reopen a hand-resolved alert for a job failing again; False if it is not resolved.

    The same message comes back to life: state open, the job's streak recorded, the
    reminder clock restarted, and a "reopened" event that mentions whoever resolved it
    (they judged it done; they should hear it was not).
    """
    row = db.execute("SELECT resolved_by FROM alerts WHERE id = ?", [alert_id]).fetchone()
    cursor = db.execute(
        "UPDATE alerts SET state = 'open', resolved_at = NULL, resolved_sha = NULL, "
        "resolved_by = NULL, resolve_reason = NULL, reminders_from = ?, reminders_sent = 0, "
        "last_reminder_at = NULL WHERE id = ? AND state = 'resolved'",
        [to_iso(now), alert_id])
    if cursor.rowcount == 0:
        return False
    _write_member(db, alert_id, job_key, streak, now)
    _refresh_range(db, alert_id)
    resolver = row[0] if row else None
    add_event(db, alert_id, "reopened", now, key=job_key, sha=_sha(streak.newest_failure),
              reason="failing on a newer commit after it was resolved by hand",
              mentions=[resolver] if resolver else [])
    return True


def add_event(db: sqlite_utils.Database, alert_id: int, kind: str, at: datetime,
              actor: str | None = None, **data: Any) -> int:
    """Append to an alert's timeline and bump its version (the Slack parent re-renders)."""
    cursor = db.execute(
        "INSERT INTO alert_events (alert_id, kind, actor, at, data) VALUES (?, ?, ?, ?, ?)",
        [alert_id, kind, actor, to_iso(at), json.dumps(data, sort_keys=True)],
    )
    bump_version(db, alert_id)
    return int(cursor.lastrowid or 0)


def bump_version(db: sqlite_utils.Database, alert_id: int) -> None:
    db.execute("UPDATE alerts SET version = version + 1 WHERE id = ?", [alert_id])


def events(db: sqlite_utils.Database, alert_id: int) -> list[AlertEvent]:
    return [
        AlertEvent(row[0], row[1], row[2], row[3], from_iso(row[4]) or datetime.min,
                   json.loads(row[5]))
        for row in db.execute(
            "SELECT id, alert_id, kind, actor, at, data FROM alert_events WHERE alert_id = ? "
            "ORDER BY id", [alert_id])
    ]


def _write_member(db: sqlite_utils.Database, alert_id: int, job_key: str, streak: Streak,
                  now: datetime) -> None:
    ff, nf, lg = streak.first_failure, streak.newest_failure, streak.last_green
    assert ff is not None and nf is not None
    db.execute(
        "INSERT INTO alert_jobs (alert_id, job_key, streak, first_failing_sha, first_failing_pos, "
        "newest_failing_sha, newest_failing_pos, newest_failing_time, last_green_sha, "
        "last_green_pos, recovered, joined_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) "
        "ON CONFLICT (alert_id, job_key) DO UPDATE SET streak = excluded.streak, "
        "first_failing_sha = excluded.first_failing_sha, "
        "first_failing_pos = excluded.first_failing_pos, "
        "newest_failing_sha = excluded.newest_failing_sha, "
        "newest_failing_pos = excluded.newest_failing_pos, "
        "newest_failing_time = excluded.newest_failing_time, "
        "last_green_sha = excluded.last_green_sha, last_green_pos = excluded.last_green_pos, "
        "recovered = 0, recovered_sha = NULL, recovered_at = NULL",
        [alert_id, job_key, streak.length, ff.sha, ff.position, nf.sha, nf.position,
         to_iso(nf.time), None if lg is None else lg.sha, None if lg is None else lg.position,
         to_iso(now)],
    )


def _refresh_range(db: sqlite_utils.Database, alert_id: int) -> None:
    rng = alert_range(members(db, alert_id))
    db.execute(
        "UPDATE alerts SET range_last_green = ?, range_first_failing = ? WHERE id = ?",
        [None if rng is None else rng.last_green, None if rng is None else rng.first_failing,
         alert_id],
    )


def apply_decision(db: sqlite_utils.Database, route: Route, job_key: str, decision: Decision,
                   now: datetime) -> int | None:
    """Write what ``evaluate`` decided; returns the id of the alert it touched, if any.

    A ``Join`` also ends a snooze (a new failing job wakes the alert); that is a triage
    transition, which the caller applies with ``triage.wake_if_snoozed``.
    """
    match decision:
        case NoChange():
            return None
        case Open(streak=streak):
            cursor = db.execute(
                "INSERT INTO alerts (route, repo, branch, team, priority, kind, opened_at) "
                "VALUES (?, ?, ?, ?, ?, 'streak', ?)",
                [route.name, route.repo, route.branch, route.team, route.priority, to_iso(now)],
            )
            alert_id = int(cursor.lastrowid or 0)
            _write_member(db, alert_id, job_key, streak, now)
            _refresh_range(db, alert_id)
            add_event(db, alert_id, "opened", now, key=job_key, streak=streak.length,
                      sha=_sha(streak.first_failure))
            return alert_id
        case Join(alert_id=alert_id, streak=streak):
            _write_member(db, alert_id, job_key, streak, now)
            _refresh_range(db, alert_id)
            add_event(db, alert_id, "job_joined", now, key=job_key, streak=streak.length,
                      sha=_sha(streak.first_failure))
            return alert_id
        case Update(alert_id=alert_id, streak=streak, extended=extended):
            _write_member(db, alert_id, job_key, streak, now)
            _refresh_range(db, alert_id)
            if extended:
                add_event(db, alert_id, "extended", now,
                          jobs=[{"key": job_key, "streak": streak.length}],
                          sha=_sha(streak.newest_failure))
            else:
                bump_version(db, alert_id)
            return alert_id
        case Recover(alert_id=alert_id, green=green, resolves=resolves):
            db.execute(
                "UPDATE alert_jobs SET recovered = 1, recovered_sha = ?, recovered_at = ? "
                "WHERE alert_id = ? AND job_key = ?",
                [green.sha, to_iso(now), alert_id, job_key],
            )
            add_event(db, alert_id, "job_recovered", now, key=job_key, sha=green.sha,
                      flaky=green.status is CellStatus.FLAKY)
            if resolves:
                resolve(db, alert_id, now, sha=green.sha)
            return alert_id
    raise AssertionError(f"unknown decision {decision!r}")


def drop_member(db: sqlite_utils.Database, alert_id: int, job_key: str, now: datetime, *,
                kind: str, reason: str, **data: Any) -> bool:
    """Take a job out of an open alert: its failures turned out not to be a regression
    (e.g. infrastructure only). The event ``kind`` says why; an alert left without failing
    jobs resolves with ``reason``. Returns False when the job was not an active member."""
    cursor = db.execute("DELETE FROM alert_jobs WHERE alert_id = ? AND job_key = ? AND "
                        "recovered = 0 AND alert_id IN (SELECT id FROM alerts WHERE "
                        "state != 'resolved')", [alert_id, job_key])
    if cursor.rowcount == 0:
        return False
    _refresh_range(db, alert_id)
    add_event(db, alert_id, kind, now, key=job_key, **data)
    left = db.execute("SELECT count(*) FROM alert_jobs WHERE alert_id = ? AND recovered = 0",
                      [alert_id]).fetchone()[0]
    if left == 0:
        resolve(db, alert_id, now, reason=reason)
    return True


def resolve(db: sqlite_utils.Database, alert_id: int, now: datetime, *, sha: str | None = None,
            actor: str | None = None, reason: str | None = None) -> bool:
    """Resolve an alert once; returns False when it was already resolved.

    The ``WHERE state != 'resolved'`` makes the database, not the caller, decide who
    resolves when a green result and a click race.
    """
    row = db.execute("SELECT opened_at FROM alerts WHERE id = ?", [alert_id]).fetchone()
    cursor = db.execute(
        "UPDATE alerts SET state = 'resolved', resolved_at = ?, resolved_sha = ?, "
        "resolved_by = ?, resolve_reason = ? WHERE id = ? AND state != 'resolved'",
        [to_iso(now), sha, actor, reason, alert_id],
    )
    if cursor.rowcount == 0:
        return False
    opened = from_iso(row[0]) if row else None
    duration = int((now - opened).total_seconds()) if opened else None
    add_event(db, alert_id, "resolved", now, actor=actor, sha=sha, reason=reason,
              duration_s=duration)
    return True


def _sha(cell: PlacedCell | None) -> str | None:
    return None if cell is None else cell.sha
