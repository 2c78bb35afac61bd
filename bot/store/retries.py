"""Reruns of failed jobs asked for from Slack: one row per job of a commit, so each is rerun
at most once, with who asked, how the request to GitHub went and what the rerun said.

States: ``planned`` (to be requested), ``uncertain`` (GitHub's answer was lost: look
before asking again), ``requested`` (GitHub started it; waiting for its result),
``done`` (``outcome``: passed, failed, cancelled), ``refused`` (GitHub said no; ``detail``
says why), ``lost`` (no result came in time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain.cells import is_failed_run
from bot.domain.model import JobResult
from bot.store.codec import from_iso, to_iso

PLANNED, UNCERTAIN, REQUESTED, DONE, REFUSED, LOST = (
    "planned", "uncertain", "requested", "done", "refused", "lost")
OPEN_STATES = (PLANNED, UNCERTAIN, REQUESTED)


@dataclass(frozen=True, slots=True)
class Retry:
    id: int
    alert_id: int
    repo: str
    sha: str
    workflow: str
    job_name: str
    job_key: str
    job_id: int
    run_id: int | None
    attempt: int
    requested_by: str
    requested_at: datetime
    state: str
    outcome: str | None
    result_job_id: int | None
    detail: str | None
    tries: int
    next_try_at: datetime | None


_COLUMNS = ("id, alert_id, repo, sha, workflow, job_name, job_key, job_id, run_id, attempt, "
            "requested_by, requested_at, state, outcome, result_job_id, detail, tries, "
            "next_try_at")


def _retry(row: Sequence[Any]) -> Retry:
    values = list(row)
    values[11] = from_iso(values[11])
    values[17] = from_iso(values[17])
    return Retry(*values)


def plan(db: sqlite_utils.Database, alert_id: int, runs: Sequence[JobResult],
         key_of: dict[int, str], actor: str, now: datetime) -> tuple[list[Retry], list[Retry]]:
    """Record a rerun of each run's job; returns (newly planned, retried before).

    The unique ``(repo, sha, workflow, job_name)`` key makes a job's rerun happen once,
    whichever of two racing requests commits first.
    """
    new: list[Retry] = []
    before: list[Retry] = []
    for run in runs:
        cursor = db.execute(
            "INSERT INTO job_retries (alert_id, repo, sha, workflow, job_name, job_key, job_id, "
            "run_id, attempt, requested_by, requested_at, state, next_try_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (repo, sha, workflow, job_name) DO NOTHING",
            [alert_id, run.repo, run.sha, run.workflow, run.job_name, key_of[run.job_id],
             run.job_id, run.run_id, run.attempt, actor, to_iso(now), PLANNED, to_iso(now)])
        row = db.execute(f"SELECT {_COLUMNS} FROM job_retries WHERE repo = ? AND sha = ? "
                         "AND workflow = ? AND job_name = ?",
                         [run.repo, run.sha, run.workflow, run.job_name]).fetchone()
        (new if cursor.rowcount else before).append(_retry(row))
    return new, before


def due(db: sqlite_utils.Database, now: datetime) -> list[Retry]:
    """Retries to ask GitHub for (or to look for) now, oldest first."""
    return [_retry(row) for row in db.execute(
        f"SELECT {_COLUMNS} FROM job_retries WHERE state IN (?, ?) AND "
        "(next_try_at IS NULL OR next_try_at <= ?) ORDER BY id", [PLANNED, UNCERTAIN,
                                                                 to_iso(now)])]


def waiting(db: sqlite_utils.Database) -> list[Retry]:
    """Retries GitHub started, waiting for their result."""
    return [_retry(row) for row in db.execute(
        f"SELECT {_COLUMNS} FROM job_retries WHERE state = ? ORDER BY id", [REQUESTED])]


def of_alert(db: sqlite_utils.Database, alert_id: int) -> list[Retry]:
    return [_retry(row) for row in db.execute(
        f"SELECT {_COLUMNS} FROM job_retries WHERE alert_id = ? ORDER BY id", [alert_id])]


def move(db: sqlite_utils.Database, retry_id: int, state: str, now: datetime, *,
         detail: str | None = None, next_try_at: datetime | None = None,
         tried: bool = False) -> None:
    db.execute(
        "UPDATE job_retries SET state = ?, detail = coalesce(?, detail), next_try_at = ?, "
        "tries = tries + ?, started_at = CASE WHEN ? = 'requested' THEN ? ELSE started_at END "
        "WHERE id = ?",
        [state, detail, to_iso(next_try_at), int(tried), state, to_iso(now), retry_id])


def settle(db: sqlite_utils.Database, retry_id: int, state: str, outcome: str | None,
           result_job_id: int | None, now: datetime, detail: str | None = None) -> bool:
    """Finish a retry; False when it was finished already (another tick got there first)."""
    cursor = db.execute(
        "UPDATE job_retries SET state = ?, outcome = ?, result_job_id = ?, finished_at = ?, "
        "detail = coalesce(?, detail), next_try_at = NULL WHERE id = ? AND state IN (?, ?, ?)",
        [state, outcome, result_job_id, to_iso(now), detail, retry_id, *OPEN_STATES])
    return cursor.rowcount > 0


def newer_result(db: sqlite_utils.Database, retry: Retry) -> tuple[int, str] | None:
    """The rerun's finished result: a newer run of the same job at the same commit."""
    row = db.execute(
        "SELECT job_id, conclusion FROM job_results WHERE repo = ? AND job_key = ? AND sha = ? "
        "AND workflow = ? AND job_name = ? AND job_id > ? AND status = 'completed' "
        "AND conclusion IS NOT NULL ORDER BY job_id DESC LIMIT 1",
        [retry.repo, retry.job_key, retry.sha, retry.workflow, retry.job_name,
         retry.job_id]).fetchone()
    return None if row is None else (row[0], row[1])


def outcome_of(conclusion: str) -> str:
    """What a rerun's conclusion says: passed, failed, or cancelled (no answer)."""
    if conclusion in ("success", "flaky"):
        return "passed"
    probe = JobResult(repo="", sha="", workflow="", job_name="", job_id=0, status="completed",
                      conclusion=conclusion)
    return "failed" if is_failed_run(probe) else "cancelled"


def old_retries(db: sqlite_utils.Database, repo: str, branch: str, cut: int, batch: int) -> int:
    """Retries of commits placed before ``cut`` (one batch): they go with the results they
    reran (``bot.store.retention``); whatever their state, nothing will read them again."""
    cursor = db.execute(
        "DELETE FROM job_retries WHERE rowid IN (SELECT r.rowid FROM commits c "
        "JOIN job_retries r ON r.repo = c.repo AND r.sha = c.sha "
        "WHERE c.repo = ? AND c.branch = ? AND c.position < ? LIMIT ?)",
        [repo, branch, cut, batch])
    return cursor.rowcount
