"""Alerts, their member jobs and timelines: read as domain data, decisions applied."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain.alerts import Claim, Founding, Member, Withdrawn, alert_range, resolution
from bot.domain.manual_resolve import ResolvedByHand
from bot.domain.model import CellStatus, PlacedCell
from bot.domain.route import Route
from bot.store import evidence
from bot.store.codec import from_iso, to_iso

MEMBER_COLUMNS = (
    "alert_id, job_key, streak, first_failing_sha, first_failing_pos, newest_failing_sha, "
    "newest_failing_pos, newest_failing_time, last_green_sha, last_green_pos, recovered, "
    "reached_pos, recovered_sha, recovered_pos"
)
# a member of an alert resolved by hand: the engine leaves it as the person saw it
_PINNED = ("EXISTS (SELECT 1 FROM alerts a WHERE a.id = alert_jobs.alert_id "
           "AND a.state = 'resolved' AND a.resolved_by IS NOT NULL)")


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


def _member(row: tuple, pinned: bool = False) -> Member:
    (alert_id, job_key, streak, ff_sha, ff_pos, nf_sha, nf_pos, nf_time, lg_sha, lg_pos,
     recovered, reached, rec_sha, rec_pos) = row[:14]
    return Member(
        alert_id=alert_id,
        job_key=job_key,
        streak=streak,
        first_failing=PlacedCell(ff_pos, ff_sha, CellStatus.FAILURE),
        newest_failing=PlacedCell(nf_pos, nf_sha, CellStatus.FAILURE, from_iso(nf_time)),
        last_green=None if lg_sha is None else PlacedCell(lg_pos, lg_sha, CellStatus.SUCCESS),
        recovered=bool(recovered),
        reached=reached,
        recovery=(PlacedCell(rec_pos, rec_sha, CellStatus.SUCCESS)
                  if recovered and rec_sha is not None and rec_pos is not None else None),
        pinned=pinned,
    )


def members(db: sqlite_utils.Database, alert_id: int) -> list[Member]:
    """The alert's members (withdrawn ones left out), in the order they joined."""
    return [_member(row) for row in db.execute(
        f"SELECT {MEMBER_COLUMNS} FROM alert_jobs WHERE alert_id = ? AND withdrawn = 0 "
        "ORDER BY joined_at, job_key", [alert_id])]


def members_of_key(db: sqlite_utils.Database, route: str, job_key: str, low: int | None,
                   high: int | None) -> list[Member]:
    """The job's members in the route's alerts (not withdrawn, not pinned) whose failing
    commits lie in ``[low, high]`` (None: unbounded)."""
    sql = (f"SELECT {MEMBER_COLUMNS} FROM alert_jobs WHERE route = ? AND job_key = ? "
           f"AND withdrawn = 0 AND NOT {_PINNED}")
    params: list[object] = [route, job_key]
    if low is not None:
        sql += " AND newest_failing_pos >= ?"
        params.append(low)
    if high is not None:
        sql += " AND first_failing_pos <= ?"
        params.append(high)
    return [_member(row) for row in db.execute(sql, params)]


def alerts_before(db: sqlite_utils.Database, route: str, position: int) -> set[int]:
    """Alerts (not pinned) holding a member that reached the threshold before ``position``:
    a regrouping from ``position`` never gives their ids to a new group."""
    return {row[0] for row in db.execute(
        f"SELECT DISTINCT alert_id FROM alert_jobs WHERE route = ? AND reached_pos < ? "
        f"AND withdrawn = 0 AND NOT {_PINNED}", [route, position])}


def keys_in_alerts(db: sqlite_utils.Database,
                   changes: Mapping[str, tuple[int, int]]) -> set[str]:
    """The jobs among ``changes`` (job key -> its lowest and highest changed trunk
    position) whose change may reach a member of an alert (withdrawn ones aside).

    Only for changes that start nothing (passes added, times moved): such a change
    reaches a member only between the passes around it. A member that recovered at a pass
    before the lowest change, or whose last green is after the highest, lies beyond a pass
    that the change leaves in place, so it is skipped; a job alerted on a year ago is not
    read again for every pass it has had since.
    """
    found: set[str] = set()
    if not changes:
        return found
    ordered = sorted(changes)
    lowest = min(low for low, _ in changes.values())
    for start in range(0, len(ordered), 500):
        chunk = ordered[start:start + 500]
        for key, green, recovered in db.execute(
                f"SELECT job_key, last_green_pos, recovered_pos FROM alert_jobs "
                f"WHERE withdrawn = 0 AND job_key IN ({','.join('?' * len(chunk))}) "
                "AND (recovered_pos IS NULL OR recovered_pos >= ?)", [*chunk, lowest]):
            low, high = changes[key]
            if (recovered is None or recovered >= low) and (green is None or green <= high):
                found.add(key)
    return found


def members_from(db: sqlite_utils.Database, route: str, position: int) -> list[Member]:
    """The route's members (not withdrawn, not pinned) that reached the threshold at or
    after ``position``: the ones a regrouping from there places again."""
    return [_member(row) for row in db.execute(
        f"SELECT {MEMBER_COLUMNS} FROM alert_jobs WHERE route = ? AND reached_pos >= ? "
        f"AND withdrawn = 0 AND NOT {_PINNED}", [route, position])]


def fixed_alerts(db: sqlite_utils.Database, route: str,
                 position: int) -> list[tuple[int, list[Member]]]:
    """Alerts (not pinned) with a member that reached the threshold before ``position`` and
    still alerts there: what a regrouping from ``position`` may join. Each comes with its
    members from before ``position``, which stay where they are."""
    ids = [row[0] for row in db.execute(
        f"SELECT DISTINCT alert_id FROM alert_jobs WHERE route = ? AND reached_pos < ? "
        f"AND withdrawn = 0 AND (recovered_pos IS NULL OR recovered_pos > ?) AND NOT {_PINNED} "
        "ORDER BY alert_id", [route, position, position])]
    out = []
    for alert_id in ids:
        kept = [_member(row) for row in db.execute(
            f"SELECT {MEMBER_COLUMNS} FROM alert_jobs WHERE alert_id = ? AND withdrawn = 0 "
            "AND reached_pos < ?", [alert_id, position])]
        out.append((alert_id, kept))
    return out


def resolved_by_hand(db: sqlite_utils.Database, route: str, job_key: str,
                     limit: int = 5) -> list[ResolvedByHand]:
    """The route's alerts a person resolved while ``job_key`` still failed in them, newest
    first (``bot.domain.manual_resolve`` decides what a new failure of the job means)."""
    columns = ", ".join(f"j.{c.strip()}" for c in MEMBER_COLUMNS.split(","))
    rows = db.execute(
        f"SELECT {columns} FROM alerts a JOIN alert_jobs j ON j.alert_id = a.id "
        "WHERE a.route = ? AND a.state = 'resolved' AND a.kind = 'streak' "
        "AND a.resolved_by IS NOT NULL AND j.job_key = ? AND j.recovered = 0 "
        "AND j.withdrawn = 0 ORDER BY a.resolved_at DESC, a.id DESC LIMIT ?",
        [route, job_key, limit])
    return [ResolvedByHand(row[0], _member(row, pinned=True)) for row in rows]


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


def _write_member(db: sqlite_utils.Database, alert_id: int, route: str, claim: Claim,
                  now: datetime) -> None:
    """The member row for ``claim``: its streak, range, where it reached the threshold and
    the pass that ended it (``recovered_at`` is when the bot learnt that)."""
    rec = claim.recovery
    lg = claim.last_green
    db.execute(
        "INSERT INTO alert_jobs (alert_id, job_key, route, streak, first_failing_sha, "
        "first_failing_pos, newest_failing_sha, newest_failing_pos, newest_failing_time, "
        "last_green_sha, last_green_pos, reached_pos, recovered, recovered_sha, recovered_pos, "
        "recovered_at, withdrawn, joined_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?) "
        "ON CONFLICT (alert_id, job_key) DO UPDATE SET route = excluded.route, "
        "streak = excluded.streak, first_failing_sha = excluded.first_failing_sha, "
        "first_failing_pos = excluded.first_failing_pos, "
        "newest_failing_sha = excluded.newest_failing_sha, "
        "newest_failing_pos = excluded.newest_failing_pos, "
        "newest_failing_time = excluded.newest_failing_time, "
        "last_green_sha = excluded.last_green_sha, last_green_pos = excluded.last_green_pos, "
        "reached_pos = excluded.reached_pos, recovered = excluded.recovered, "
        "recovered_sha = excluded.recovered_sha, recovered_pos = excluded.recovered_pos, "
        "recovered_at = CASE WHEN excluded.recovered = 0 THEN NULL "
        "WHEN recovered = 1 THEN recovered_at ELSE excluded.recovered_at END, withdrawn = 0",
        [alert_id, claim.key, route, claim.length, claim.first.sha, claim.first.position,
         claim.newest.sha, claim.newest.position, to_iso(claim.newest.time),
         None if lg is None else lg.sha, None if lg is None else lg.position, claim.reached,
         int(rec is not None), None if rec is None else rec.sha,
         None if rec is None else rec.position, to_iso(now) if rec is not None else None,
         to_iso(now)],
    )


def _refresh_range(db: sqlite_utils.Database, alert_id: int) -> None:
    rng = alert_range(members(db, alert_id))
    db.execute(
        "UPDATE alerts SET range_last_green = ?, range_first_failing = ? WHERE id = ?",
        [None if rng is None else rng.last_green, None if rng is None else rng.first_failing,
         alert_id],
    )


@dataclass(frozen=True, slots=True)
class Applied:
    """What writing one alert's members did: its id, and the jobs that joined it."""

    alert_id: int
    joined: tuple[str, ...]


def apply_alert(db: sqlite_utils.Database, route: Route, alert_id: int | None,
                claims: Sequence[Claim], founding: Founding,
                origin: Mapping[tuple[str, int], int], now: datetime) -> Applied:
    """Make the alert's members ``claims`` (a new alert when ``alert_id`` is None).

    ``origin`` says which alert each claim (by job and ``reached``) was recorded in; a
    job coming from another alert leaves it there ("moved"). The timeline records what
    a reader needs: opened, a job joined, a streak extended, a job recovered. State
    (resolved, reopened) is settled afterwards by ``settle``, once every alert of the
    regrouping is written.
    """
    new = alert_id is None
    if alert_id is None:
        cursor = db.execute(
            "INSERT INTO alerts (route, repo, branch, team, priority, kind, opened_at) "
            "VALUES (?, ?, ?, ?, ?, 'streak', ?)",
            [route.name, route.repo, route.branch, route.team, route.priority, to_iso(now)],
        )
        alert_id = int(cursor.lastrowid or 0)
        founder = min(claims, key=lambda c: c.order)
        add_event(db, alert_id, "opened", now, key=founder.key, streak=founder.length,
                  sha=founder.first.sha)
        if founding.follows is not None:
            add_event(db, alert_id, "follows", now, previous=founding.follows)
    elif founding.reopen is not None:
        reopen(db, alert_id, now, key=claims[0].key, sha=claims[0].newest.sha,
               reason="failing on a newer commit after it was resolved by hand")
    before = {m.job_key: m for m in members(db, alert_id)}
    joined: list[str] = []
    for claim in claims:
        source = origin.get((claim.key, claim.reached))
        if source is not None and source != alert_id:
            db.execute("DELETE FROM alert_jobs WHERE alert_id = ? AND job_key = ?",
                       [source, claim.key])
            add_event(db, source, "job_moved", now, key=claim.key, to=alert_id)
        old = before.get(claim.key)
        _write_member(db, alert_id, route.name, claim, now)
        if old is None:
            if not new:
                add_event(db, alert_id, "job_joined", now, key=claim.key, streak=claim.length,
                          sha=claim.first.sha)
                joined.append(claim.key)
            continue
        if claim.newest.position > old.newest_failing.position:
            add_event(db, alert_id, "extended", now,
                      jobs=[{"key": claim.key, "streak": claim.length}], sha=claim.newest.sha)
        elif claim.recovery is not None and not old.recovered:
            add_event(db, alert_id, "job_recovered", now, key=claim.key,
                      sha=claim.recovery.sha, flaky=claim.recovery.status is CellStatus.FLAKY)
        elif _facts(old.as_claim()) != _facts(claim):
            bump_version(db, alert_id)
    return Applied(alert_id, tuple(joined))


def _facts(claim: Claim) -> tuple[object, ...]:
    """What a member row shows of a claim (cell times and statuses are not part of it)."""
    return (claim.length, claim.first.sha, claim.newest.sha,
            None if claim.last_green is None else claim.last_green.sha,
            None if claim.recovery is None else claim.recovery.sha, claim.reached)


INFRA_REASON = "only infrastructure failures ({cause}), not a regression"


def withdraw(db: sqlite_utils.Database, gone: Withdrawn, threshold: int,
             now: datetime) -> None:
    """A member whose failures late results showed are no streak of ``threshold`` after
    all: it leaves the alert, recovered at the pass that showed it, with a timeline entry
    saying why: its failures turned out to be infrastructure (``EVIDENCE.md``; it leaves
    the list), or a rerun passed in between (it stays listed, recovered)."""
    member, green = gone.member, gone.green
    db.execute("UPDATE alert_jobs SET withdrawn = 1, recovered = 1, recovered_sha = ?, "
               "recovered_pos = ?, recovered_at = ? WHERE alert_id = ? AND job_key = ?",
               [None if green is None else green.sha, None if green is None else green.position,
                to_iso(now), member.alert_id, member.job_key])
    head_ = head(db, member.alert_id)
    causes = [] if head_ is None else evidence.infra_causes(
        db, head_.repo, head_.branch, member.job_key, member.first_failing.position,
        member.newest_failing.position)
    if causes:
        # not a regression at all: the job leaves the alert's list (its runs show under
        # "Infrastructure failures"), as when the evidence reader drops it
        db.execute("DELETE FROM alert_jobs WHERE alert_id = ? AND job_key = ?",
                   [member.alert_id, member.job_key])
        cause = ", ".join(causes)
        add_event(db, member.alert_id, "job_infra", now, key=member.job_key, cause=cause,
                  reason=INFRA_REASON.format(cause=cause))
        return
    add_event(db, member.alert_id, "job_withdrawn", now, key=member.job_key,
              sha=None if green is None else green.sha,
              flaky=green is not None and green.status is CellStatus.FLAKY,
              reason=f"late results: fewer than {threshold} failing commits in a row")


def settle(db: sqlite_utils.Database, alert_id: int, now: datetime) -> None:
    """The alert's range and state from its members now.

    Resolved once every member ended, at the last member's recovery; an alert the engine
    had resolved opens again when a member turns out to be still failing; an alert left
    without members (all withdrawn or moved) is resolved, saying so. Alerts resolved by
    hand are left as they are.
    """
    row = db.execute("SELECT state, resolved_by FROM alerts WHERE id = ?",
                     [alert_id]).fetchone()
    if row is None or (row[0] == "resolved" and row[1] is not None):
        return
    current = members(db, alert_id)
    _refresh_range(db, alert_id)
    if not current:
        green_row = db.execute(
            "SELECT recovered_sha FROM alert_jobs WHERE alert_id = ? AND withdrawn = 1 "
            "ORDER BY recovered_pos DESC LIMIT 1", [alert_id]).fetchone()
        infra = [e.data.get("cause") for e in events(db, alert_id)
                 if e.kind in ("job_infra", "job_withdrawn", "job_moved")]
        reason = ("late results: no job of it failed on enough commits in a row (a rerun "
                  "passed in between, or its failures belong to another alert)")
        if infra and all(infra):
            reason = INFRA_REASON.format(cause=", ".join(dict.fromkeys(map(str, infra))))
        resolve(db, alert_id, now, sha=green_row[0] if green_row else None, reason=reason)
        return
    green = resolution([m.as_claim() for m in current])
    if green is not None:
        if not resolve(db, alert_id, now, sha=green.sha):
            # late results moved the pass that ended it (a rerun passed at an older
            # commit): the alert says where it really went green
            moved = db.execute("UPDATE alerts SET resolved_sha = ? WHERE id = ? "
                               "AND resolved_sha IS NOT ?", [green.sha, alert_id, green.sha])
            if moved.rowcount:
                bump_version(db, alert_id)
    elif row[0] == "resolved":
        still = next(m for m in current if m.recovery is None)
        reopen(db, alert_id, now, key=still.job_key, sha=still.newest_failing.sha,
               reason="late results: it is still failing")


def reopen(db: sqlite_utils.Database, alert_id: int, now: datetime, *, key: str, sha: str,
           reason: str) -> bool:
    """Open a resolved alert again; False if it is not resolved.

    The same message comes back to life: state open, the reminder clock restarted, and a
    "reopened" event that mentions whoever resolved it by hand (they judged it done; they
    should hear it was not).
    """
    row = db.execute("SELECT resolved_by FROM alerts WHERE id = ?", [alert_id]).fetchone()
    cursor = db.execute(
        "UPDATE alerts SET state = 'open', resolved_at = NULL, resolved_sha = NULL, "
        "resolved_by = NULL, resolve_reason = NULL, reminders_from = ?, reminders_sent = 0, "
        "last_reminder_at = NULL WHERE id = ? AND state = 'resolved'",
        [to_iso(now), alert_id])
    if cursor.rowcount == 0:
        return False
    resolver = row[0] if row else None
    add_event(db, alert_id, "reopened", now, key=key, sha=sha, reason=reason,
              mentions=[resolver] if resolver else [])
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
