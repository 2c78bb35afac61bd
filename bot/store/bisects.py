"""Bisects and their probes in SQLite: every state change is one guarded UPDATE.

The guards (``WHERE state = ...``) make the database decide when two ticks, a tick
and a cancel, or two clicks race: only one of them changes the row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain.bisect_planner import Outcome
from bot.domain.model import CellStatus, JobResult
from bot.store.codec import from_iso, from_json_list, to_iso

RUNNING = "running"
FINISHED_STATES = ("found", "failed", "cancelled")
PROBE_STATES = ("planned", "dispatching", "dispatched", "running", "done")


@dataclass(frozen=True, slots=True)
class Bisect:
    """One bisect of one job of one alert; ``suspects`` oldest first."""

    id: int
    alert_id: int
    route: str
    repo: str
    branch: str
    job_key: str
    backend: str
    k: int
    state: str
    last_good: str
    suspects: tuple[str, ...]
    limits: Mapping[str, int]
    started_by: str | None
    started_at: datetime
    finished_at: datetime | None
    culprit: str | None
    reason: str | None
    round: int
    reported_round: int
    ranked: tuple[str, ...] = ()  # suspects the evidence points at, most likely first


@dataclass(frozen=True, slots=True)
class Probe:
    """One result for the bisect: a run it started (``source = 'run'``) or CI's (``'ci'``)."""

    id: int
    bisect_id: int
    sha: str
    round: int
    source: str
    attempt: int
    state: str
    outcome: Outcome | None
    run_id: int | None
    run_url: str | None
    dispatched_at: datetime | None
    attempted_at: datetime | None
    lookups: int
    correlation_id: str | None
    detail: str | None

    @property
    def done(self) -> bool:
        return self.state == "done"


_BISECT_COLUMNS = ("id, alert_id, route, repo, branch, job_key, backend, k, state, last_good, "
                   "suspects_json, limits_json, started_by, started_at, finished_at, culprit, "
                   "reason, round, reported_round, ranked_json")
_PROBE_COLUMNS = ("id, bisect_id, sha, round, source, attempt, state, outcome, run_id, run_url, "
                  "dispatched_at, attempted_at, lookups, correlation_id, detail")


def _bisect(row: tuple) -> Bisect:
    (id_, alert_id, route, repo, branch, job_key, backend, k, state, last_good, suspects,
     limits, started_by, started_at, finished_at, culprit, reason, round_, reported,
     ranked) = row
    return Bisect(id_, alert_id, route, repo, branch, job_key, backend, k, state, last_good,
                  tuple(json.loads(suspects)), json.loads(limits or "{}"), started_by,
                  from_iso(started_at) or datetime.min, from_iso(finished_at), culprit, reason,
                  round_, reported, tuple(json.loads(ranked or "[]")))


def _probe(row: tuple) -> Probe:
    (id_, bisect_id, sha, round_, source, attempt, state, outcome, run_id, run_url,
     dispatched_at, attempted_at, lookups, correlation_id, detail) = row
    return Probe(id_, bisect_id, sha, round_, source, attempt, state,
                 Outcome(outcome) if outcome else None, run_id, run_url, from_iso(dispatched_at),
                 from_iso(attempted_at), lookups, correlation_id, detail)


# --- bisects ----------------------------------------------------------------------------


def insert(db: sqlite_utils.Database, *, alert_id: int, route: str, repo: str, branch: str,
           job_key: str, backend: str, k: int, last_good: str, suspects: Iterable[str],
           limits: Mapping[str, int], started_by: str | None, now: datetime,
           ranked: Iterable[str] = ()) -> int:
    """A new running bisect; ``sqlite3.IntegrityError`` when the alert already has one."""
    cursor = db.execute(
        "INSERT INTO bisects (alert_id, route, repo, branch, job_key, backend, k, state, "
        "last_good, suspects_json, limits_json, started_by, started_at, ranked_json) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)",
        [alert_id, route, repo, branch, job_key, backend, k, last_good,
         json.dumps(list(suspects)), json.dumps(dict(limits), sort_keys=True), started_by,
         to_iso(now), json.dumps(list(ranked))],
    )
    return int(cursor.lastrowid or 0)


def get(db: sqlite_utils.Database, bisect_id: int) -> Bisect | None:
    row = db.execute(f"SELECT {_BISECT_COLUMNS} FROM bisects WHERE id = ?",
                     [bisect_id]).fetchone()
    return _bisect(row) if row else None


def running(db: sqlite_utils.Database) -> list[Bisect]:
    return [_bisect(row) for row in db.execute(
        f"SELECT {_BISECT_COLUMNS} FROM bisects WHERE state = 'running' ORDER BY id")]


def running_for_alert(db: sqlite_utils.Database, alert_id: int) -> Bisect | None:
    row = db.execute(f"SELECT {_BISECT_COLUMNS} FROM bisects WHERE alert_id = ? "
                     "AND state = 'running'", [alert_id]).fetchone()
    return _bisect(row) if row else None


def latest_for_alert(db: sqlite_utils.Database, alert_id: int) -> Bisect | None:
    row = db.execute(f"SELECT {_BISECT_COLUMNS} FROM bisects WHERE alert_id = ? "
                     "ORDER BY id DESC LIMIT 1", [alert_id]).fetchone()
    return _bisect(row) if row else None


def running_count(db: sqlite_utils.Database, route: str) -> int:
    return db.execute("SELECT count(*) FROM bisects WHERE route = ? AND state = 'running'",
                      [route]).fetchone()[0]


def finish(db: sqlite_utils.Database, bisect_id: int, state: str, now: datetime, *,
           culprit: str | None = None, reason: str | None = None) -> bool:
    """End a running bisect once; False when it had already ended (e.g. cancelled)."""
    assert state in FINISHED_STATES
    cursor = db.execute(
        "UPDATE bisects SET state = ?, finished_at = ?, culprit = ?, reason = ? "
        "WHERE id = ? AND state = 'running'",
        [state, to_iso(now), culprit, reason, bisect_id])
    return cursor.rowcount == 1


def set_rounds(db: sqlite_utils.Database, bisect_id: int, *, round_: int,
               reported_round: int) -> None:
    db.execute("UPDATE bisects SET round = ?, reported_round = ? WHERE id = ?",
               [round_, reported_round, bisect_id])


def set_alert_status(db: sqlite_utils.Database, alert_id: int, text: str | None) -> None:
    """What the alert's parent shows while bisecting ("round 2, 16 -> 4 suspects")."""
    db.execute("UPDATE alerts SET bisect_status = ? WHERE id = ?", [text, alert_id])


# --- probes -----------------------------------------------------------------------------


def probes(db: sqlite_utils.Database, bisect_id: int) -> list[Probe]:
    return [_probe(row) for row in db.execute(
        f"SELECT {_PROBE_COLUMNS} FROM bisect_probes WHERE bisect_id = ? ORDER BY id",
        [bisect_id])]


def add_probe(db: sqlite_utils.Database, bisect_id: int, sha: str, round_: int, *,
              source: str = "run", outcome: Outcome | None = None,
              detail: str | None = None, now: datetime | None = None) -> int:
    """A planned run, or (with ``outcome``) a result that is already known."""
    done = outcome is not None
    cursor = db.execute(
        "INSERT INTO bisect_probes (bisect_id, sha, round, source, state, outcome, detail, "
        "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [bisect_id, sha, round_, source, "done" if done else "planned",
         outcome.value if outcome else None, detail, to_iso(now) if done else None])
    return int(cursor.lastrowid or 0)


def claim_dispatch(db: sqlite_utils.Database, probe: Probe, now: datetime,
                   correlation_id: str | None) -> bool:
    """Move a probe to ``dispatching`` before its POST, only if nobody else did.

    Committed before the request leaves, so a crash or a 5xx afterwards leaves a row
    that says "a run may exist": the next tick looks for it instead of dispatching.
    A bisect cancelled meanwhile dispatches nothing more.
    """
    cursor = db.execute(
        "UPDATE bisect_probes SET state = 'dispatching', attempt = attempt + 1, "
        "attempted_at = ?, dispatched_at = coalesce(dispatched_at, ?), lookups = 0, "
        "correlation_id = ?, detail = NULL WHERE id = ? AND state = ? AND attempt = ? "
        "AND bisect_id IN (SELECT id FROM bisects WHERE state = 'running')",
        [to_iso(now), to_iso(now), correlation_id, probe.id, probe.state, probe.attempt])
    return cursor.rowcount == 1


def mark_dispatched(db: sqlite_utils.Database, probe_id: int, attempt: int) -> None:
    """GitHub answered 204: a run exists for sure; never dispatch this probe again."""
    db.execute("UPDATE bisect_probes SET state = 'dispatched' WHERE id = ? "
               "AND state = 'dispatching' AND attempt = ?", [probe_id, attempt])


def unclaim(db: sqlite_utils.Database, probe_id: int, attempt: int, detail: str) -> None:
    """GitHub said no before starting anything (rate limit): plan the dispatch again."""
    db.execute("UPDATE bisect_probes SET state = 'planned', detail = ? WHERE id = ? "
               "AND state = 'dispatching' AND attempt = ?", [detail, probe_id, attempt])


def note(db: sqlite_utils.Database, probe_id: int, detail: str, *,
         lookup: bool = False) -> None:
    db.execute("UPDATE bisect_probes SET detail = ?, lookups = lookups + ? WHERE id = ?",
               [detail, 1 if lookup else 0, probe_id])


def set_run(db: sqlite_utils.Database, probe_id: int, run_id: int | None,
            run_url: str | None) -> bool:
    """The probe's run is known (or, for a local probe, started): it is running now."""
    cursor = db.execute(
        "UPDATE bisect_probes SET state = 'running', run_id = ?, run_url = ?, detail = NULL "
        "WHERE id = ? AND state IN ('planned', 'dispatching', 'dispatched') "
        "AND bisect_id IN (SELECT id FROM bisects WHERE state = 'running')",
        [run_id, run_url, probe_id])
    return cursor.rowcount == 1


def finish_probe(db: sqlite_utils.Database, probe_id: int, outcome: Outcome, detail: str,
                 now: datetime, run_url: str | None = None) -> bool:
    cursor = db.execute(
        "UPDATE bisect_probes SET state = 'done', outcome = ?, detail = ?, finished_at = ?, "
        "run_url = coalesce(?, run_url) WHERE id = ? AND state != 'done'",
        [outcome.value, detail, to_iso(now), run_url, probe_id])
    return cursor.rowcount == 1


def claimed_run_ids(db: sqlite_utils.Database) -> set[int]:
    """Runs some probe already owns: never matched to another probe."""
    return {row[0] for row in db.execute(
        "SELECT run_id FROM bisect_probes WHERE run_id IS NOT NULL")}


def as_dict(probe: Probe) -> dict[str, Any]:
    """A probe as thread replies show it."""
    return {"sha": probe.sha, "outcome": probe.outcome.value if probe.outcome else None,
            "url": probe.run_url, "detail": probe.detail}


# ----------------------------------------------------------------- what bisects read of CI


def run_results(db: sqlite_utils.Database, repo: str, run_id: int) -> list[JobResult]:
    """Every stored attempt of one workflow run (webhooks and pollers put them there)."""
    return [
        JobResult(
            repo=repo, sha=row[0], workflow=row[1], job_name=row[2], job_id=row[3],
            status=row[4], conclusion=row[5], run_id=run_id, attempt=row[6], branch=row[7],
            html_url=row[8], started_at=from_iso(row[9]), completed_at=from_iso(row[10]),
            failure_lines=from_json_list(row[11]), source=row[12])
        for row in db.execute(
            "SELECT sha, workflow, job_name, job_id, status, conclusion, attempt, branch, "
            "html_url, started_at, completed_at, failure_lines, source FROM job_results "
            "WHERE repo = ? AND run_id = ?", [repo, run_id])
    ]


def settled_cells(db: sqlite_utils.Database, repo: str, branch: str, job_key: str,
                  low: int, high: int) -> list[tuple[str, CellStatus]]:
    """The job's passing and failing cells strictly between two trunk positions, oldest first."""
    rows = db.execute(
        "SELECT sha, status FROM cells WHERE repo = ? AND branch = ? AND job_key = ? "
        "AND position > ? AND position < ? AND status IN (?, ?) ORDER BY position",
        [repo, branch, job_key, low, high, CellStatus.FAILURE.value, CellStatus.SUCCESS.value])
    return [(sha, CellStatus(status)) for sha, status in rows]
