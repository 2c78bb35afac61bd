"""Triage transitions written to SQLite: acknowledge, assign, snooze, resolve, nudges, wake-ups.

Each function runs inside the caller's ``store.transaction()``. It reads the alert's
triage state, lets ``bot.domain.triage`` decide, and writes the result with
``UPDATE ... WHERE id = ? AND version = ?``: a compare-and-set on the alert's version,
so of two clicks (or a click and a reminder tick) racing on one alert exactly one
transition is written. The write transaction (``BEGIN IMMEDIATE``) makes the loser
read the winner's state, so its refusal can say who won and when.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain import triage as rules
from bot.domain.route import Route
from bot.domain.triage import Refusal, SnoozeSpec, Transition, TriageState
from bot.store import alerts as alert_store
from bot.store.codec import from_iso, to_iso

_TIMES = ("acked_at", "assigned_at", "snoozed_until", "reminders_from", "last_reminder_at",
          "escalated_at")
_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class TriageOutcome:
    """What an action did: written (``refusal`` None) or refused with the reason."""

    alert_id: int
    refusal: Refusal | None = None
    state: TriageState | None = None  # after the action when written, as found when refused
    event: str | None = None


def load(db: sqlite_utils.Database, alert_id: int) -> TriageState | None:
    found = _load(db, alert_id)
    return None if found is None else found[0]


def _load(db: sqlite_utils.Database, alert_id: int) -> tuple[TriageState, int] | None:
    """The alert's triage state and the version it was read at."""
    rows = list(db.query(
        f"SELECT id, route, priority, state, opened_at, {', '.join(rules.MUTABLE_FIELDS)}, "
        "version FROM alerts WHERE id = ?", [alert_id]))
    return (_state(rows[0]), int(rows[0]["version"])) if rows else None


def _state(row: dict[str, Any]) -> TriageState:
    values = {name: row[name] for name in rules.MUTABLE_FIELDS}
    for name in _TIMES:
        values[name] = from_iso(values[name])
    values["escalated"] = bool(values["escalated"])
    values["reminders_sent"] = int(values["reminders_sent"] or 0)
    return TriageState(id=row["id"], route=row["route"], priority=row["priority"],
                       resolved=row["state"] == "resolved",
                       opened_at=from_iso(row["opened_at"]) or datetime.min, **values)


def _write(db: sqlite_utils.Database, version: int, t: Transition, now: datetime) -> bool:
    """Compare-and-set the triage columns; False when the alert moved on meanwhile."""
    values = []
    for name in rules.MUTABLE_FIELDS:
        value = getattr(t.after, name)
        if isinstance(value, datetime):
            value = to_iso(value)
        elif isinstance(value, bool):
            value = int(value)
        values.append(value)
    assignments = ", ".join(f"{name} = ?" for name in rules.MUTABLE_FIELDS)
    cursor = db.execute(f"UPDATE alerts SET {assignments} WHERE id = ? AND version = ?",
                        [*values, t.after.id, version])
    if cursor.rowcount == 0:
        return False
    alert_store.add_event(db, t.after.id, t.event, now, actor=t.actor, **dict(t.data))
    return True


def _apply(db: sqlite_utils.Database, alert_id: int,
           decide: Callable[[TriageState], Transition | Refusal | None],
           now: datetime) -> TriageOutcome:
    """Read, decide, compare-and-set; on a lost race decide again on the newer state."""
    for _ in range(_ATTEMPTS):
        found = _load(db, alert_id)
        if found is None:
            return TriageOutcome(alert_id, Refusal("not_found"))
        state, version = found
        decided = decide(state)
        if decided is None:
            return TriageOutcome(alert_id, None, state)
        if isinstance(decided, Refusal):
            return TriageOutcome(alert_id, decided, state)
        if _write(db, version, decided, now):
            return TriageOutcome(alert_id, None, decided.after, decided.event)
    raise RuntimeError(f"alert {alert_id} kept changing while a triage action was applied")


# ------------------------------------------------------------------- actions


def acknowledge(db: sqlite_utils.Database, alert_id: int, actor: str,
                now: datetime) -> TriageOutcome:
    return _apply(db, alert_id, lambda s: rules.acknowledge(s, actor, now), now)


def unacknowledge(db: sqlite_utils.Database, alert_id: int, actor: str,
                  now: datetime) -> TriageOutcome:
    return _apply(db, alert_id, lambda s: rules.unacknowledge(s, actor, now), now)


def assign(db: sqlite_utils.Database, alert_id: int, actor: str, assignee: str, now: datetime,
           assignee_name: str | None = None) -> TriageOutcome:
    return _apply(db, alert_id,
                  lambda s: rules.assign(s, actor, assignee, now, assignee_name), now)


def snooze(db: sqlite_utils.Database, alert_id: int, actor: str, spec: SnoozeSpec,
           now: datetime) -> TriageOutcome:
    """Snooze; a short sha is completed from the alert's trunk history when it is unique."""
    if spec.kind == "sha" and spec.sha:
        spec = SnoozeSpec("sha", sha=_full_sha(db, alert_id, spec.sha))
    return _apply(db, alert_id, lambda s: rules.snooze(s, actor, spec, now), now)


def unsnooze(db: sqlite_utils.Database, alert_id: int, actor: str, now: datetime) -> TriageOutcome:
    return _apply(db, alert_id, lambda s: rules.unsnooze(s, actor, now), now)


def resolve(db: sqlite_utils.Database, alert_id: int, actor: str, reason: str | None,
            now: datetime) -> TriageOutcome:
    """Manual resolve through ``alerts.resolve``, whose ``state != 'resolved'`` guard
    also arbitrates against a green result resolving the alert at the same moment."""
    state = load(db, alert_id)
    if state is None:
        return TriageOutcome(alert_id, Refusal("not_found"))
    if state.resolved:
        return TriageOutcome(alert_id, Refusal("resolved"), state)
    if not alert_store.resolve(db, alert_id, now, actor=actor, reason=reason or None):
        return TriageOutcome(alert_id, Refusal("resolved"), load(db, alert_id))
    return TriageOutcome(alert_id, None, load(db, alert_id), "resolved")


def wake_if_snoozed(db: sqlite_utils.Database, alert_id: int, key: str, now: datetime) -> bool:
    """End the snooze of an alert a new job just joined; True when it was snoozed."""
    outcome = _apply(db, alert_id, lambda s: rules.wake(s, key, now), now)
    return outcome.event == "woke"


# ------------------------------------------------------------------- nudges


def open_alert_ids(db: sqlite_utils.Database,
                   routes: Collection[str] | None = None) -> list[int]:
    """Open alerts, newest first; only those of ``routes`` when given."""
    rows = db.execute("SELECT id, route FROM alerts WHERE state != 'resolved' ORDER BY id DESC")
    return [row[0] for row in rows if routes is None or row[1] in routes]


def _prefix_range(prefix: str) -> tuple[str, str]:
    """``[prefix, next)``: every string that starts with ``prefix``, as an index range.

    ``sha LIKE 'abc%'`` cannot use the (repo, sha) index and reads every result of the
    repository; ``sha >= 'abc' AND sha < 'abd'`` is an index range.
    """
    return prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)


def sha_has_results(db: sqlite_utils.Database, alert_id: int, sha: str) -> bool:
    """Whether any of the alert's jobs finished at ``sha`` (a prefix is enough)."""
    if not sha:
        return False
    low, high = _prefix_range(sha)
    row = db.execute(
        "SELECT 1 FROM alerts a JOIN job_results r ON r.repo = a.repo "
        "AND r.sha >= ? AND r.sha < ? "
        "JOIN alert_jobs j ON j.alert_id = a.id AND j.job_key = r.job_key "
        "WHERE a.id = ? AND r.status = 'completed' LIMIT 1",
        [low, high, alert_id]).fetchone()
    return row is not None


def snooze_sha(db: sqlite_utils.Database, alert_id: int) -> str | None:
    """The commit an alert is snoozed until, when it is snoozed until a commit."""
    row = db.execute("SELECT snooze_sha FROM alerts WHERE id = ? AND snooze_kind = 'sha'",
                     [alert_id]).fetchone()
    return row[0] if row and row[0] else None


def send_due_nudge(db: sqlite_utils.Database, alert_id: int, routes: Mapping[str, Route],
                   now: datetime, seen_shas: Collection[str] = ()) -> str | None:
    """Record what is due for one alert as a timeline event; returns its kind, if any.

    ``seen_shas``: snooze commits already known to have results, looked up before the
    write transaction (``sha_has_results`` reads results; it must not hold the write
    lock while it does). An alert whose route left the configuration keeps the default
    reminder policy.
    """

    def decide(s: TriageState) -> Transition | None:
        route = routes.get(s.route) or Route(name=s.route)
        has_results = s.snooze_kind == "sha" and bool(s.snooze_sha) and s.snooze_sha in seen_shas
        due = rules.due_nudges(s, route, now, sha_has_results=has_results)
        return rules.nudge_transition(s, due[0], now) if due else None

    return _apply(db, alert_id, decide, now).event


def _full_sha(db: sqlite_utils.Database, alert_id: int, prefix: str) -> str:
    low, high = _prefix_range(prefix) if prefix else ("", "")
    rows = db.execute(
        "SELECT c.sha FROM alerts a JOIN commits c ON c.repo = a.repo AND c.branch = a.branch "
        "AND c.sha >= ? AND c.sha < ? WHERE a.id = ? LIMIT 2", [low, high, alert_id]).fetchall()
    return rows[0][0] if len(rows) == 1 else prefix
