"""Reruns of failed jobs, asked for from Slack or by the bot itself (a first failure, with the
route's budget): one row per job of a commit, so each is rerun at most once, with who asked,
how the request to GitHub went and what the rerun said.

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

from bot.domain.auto_retry import AUTOMATIC, BUDGET_WINDOW, affordable, budget_left
from bot.domain.cells import is_failed_run
from bot.domain.model import JobResult
from bot.store.codec import from_iso, to_iso

PLANNED, UNCERTAIN, REQUESTED, DONE, REFUSED, LOST = (
    "planned", "uncertain", "requested", "done", "refused", "lost")
OPEN_STATES = (PLANNED, UNCERTAIN, REQUESTED)


@dataclass(frozen=True, slots=True)
class Retry:
    """One job's rerun. ``alert_id`` is None for an automatic retry no alert showed when
    it was planned (``alerts_showing`` finds the alerts that show it since); ``route``
    names the route whose budget an automatic retry spent. ``attempt``: the run's attempt
    that failed, or the run's latest attempt seen just before the bot asked (another
    retry of the same run asked before it moved the run on): a later one means it started."""

    id: int
    alert_id: int | None
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
    route: str | None = None

    @property
    def automatic(self) -> bool:
        return self.requested_by == AUTOMATIC


_NAMES = ("id", "alert_id", "repo", "sha", "workflow", "job_name", "job_key", "job_id",
          "run_id", "attempt", "requested_by", "requested_at", "state", "outcome",
          "result_job_id", "detail", "tries", "next_try_at", "route")
_COLUMNS = ", ".join(_NAMES)
_R_COLUMNS = ", ".join(f"r.{name}" for name in _NAMES)


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


def plan_automatic(db: sqlite_utils.Database, route: str, budget: int, runs: Sequence[JobResult],
                   job_key: str, now: datetime) -> list[Retry] | None:
    """Record the bot's own rerun of one cell's failed runs, paid from ``route``'s budget.

    Returns the rows planned (empty when every job was retried already), or None when
    the budget left cannot pay for the whole cell. The rows belong to no alert
    (``alerts_showing`` finds the alerts that show them, now and later). Counting the
    budget and inserting happen in the caller's write transaction, so two processes (or
    two ticks) never spend past it; the unique key makes each job's rerun happen once.
    """
    if not affordable(len(runs), automatic_left(db, route, budget, now)):
        return None
    new: list[Retry] = []
    for run in runs:
        cursor = db.execute(
            "INSERT INTO job_retries (alert_id, repo, sha, workflow, job_name, job_key, job_id, "
            "run_id, attempt, requested_by, requested_at, state, next_try_at, route) VALUES "
            "(NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (repo, sha, workflow, job_name) DO NOTHING",
            [run.repo, run.sha, run.workflow, run.job_name, job_key, run.job_id,
             run.run_id, run.attempt, AUTOMATIC, to_iso(now), PLANNED, to_iso(now), route])
        if cursor.rowcount:
            new.append(_retry(db.execute(f"SELECT {_COLUMNS} FROM job_retries WHERE id = ?",
                                         [cursor.lastrowid]).fetchone()))
    return new


def automatic_left(db: sqlite_utils.Database, route: str, budget: int, now: datetime) -> int:
    """How many more automatic reruns ``route`` may ask for now (``budget`` per 24 h)."""
    used = [from_iso(row[0]) for row in db.execute(
        "SELECT requested_at FROM job_retries WHERE route = ? AND requested_at > ?",
        [route, to_iso(now - BUDGET_WINDOW)])]
    return budget_left(budget, [at for at in used if at is not None], now)


def retried_at(db: sqlite_utils.Database, repo: str, job_key: str, sha: str) -> bool:
    """Whether any shard of the job was retried (or is planned) at this commit."""
    return db.execute("SELECT 1 FROM job_retries WHERE repo = ? AND job_key = ? AND sha = ? "
                      "LIMIT 1", [repo, job_key, sha]).fetchone() is not None


def alerts_showing(db: sqlite_utils.Database, repo: str, job_key: str, sha: str, *,
                   open_only: bool = False) -> list[int]:
    """Alerts whose job ``job_key`` spans the commit ``sha``, from its last green commit
    to its newest failing one: they show a retry of the job there.

    The last green commit is included: a retry that passed made it flaky, and that is
    what tells a reader the job is flaky.
    """
    return [row[0] for row in db.execute(
        "SELECT DISTINCT a.id FROM alert_jobs j JOIN alerts a ON a.id = j.alert_id "
        "JOIN commits c ON c.repo = a.repo AND c.branch = a.branch AND c.sha = ? "
        "WHERE a.repo = ? AND j.job_key = ? AND (? = 0 OR a.state != 'resolved') "
        "AND c.position BETWEEN coalesce(j.last_green_pos, j.first_failing_pos) "
        "AND j.newest_failing_pos ORDER BY a.id", [sha, repo, job_key, int(open_only)])]


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
    """The alert's retries: those asked from it, and the bot's own retries of its jobs that
    no alert showed when they were planned (``alerts_showing``)."""
    return [_retry(row) for row in db.execute(
        f"SELECT {_COLUMNS} FROM job_retries WHERE alert_id = ? UNION "
        f"SELECT {_R_COLUMNS} FROM alert_jobs j JOIN alerts a ON a.id = j.alert_id "
        "JOIN job_retries r ON r.repo = a.repo AND r.job_key = j.job_key "
        "AND r.alert_id IS NULL "
        "JOIN commits c ON c.repo = a.repo AND c.branch = a.branch AND c.sha = r.sha "
        "WHERE j.alert_id = ? AND c.position BETWEEN coalesce(j.last_green_pos, "
        "j.first_failing_pos) AND j.newest_failing_pos ORDER BY 1", [alert_id, alert_id])]


def move(db: sqlite_utils.Database, retry_id: int, state: str, now: datetime, *,
         detail: str | None = None, next_try_at: datetime | None = None,
         tried: bool = False, attempt: int | None = None) -> None:
    """Change a retry's state; ``attempt``: the run's latest attempt seen just before asking
    (a later attempt then means the rerun started; see ``Retry.attempt``)."""
    db.execute(
        "UPDATE job_retries SET state = ?, detail = coalesce(?, detail), next_try_at = ?, "
        "tries = tries + ?, started_at = CASE WHEN ? = 'requested' THEN ? ELSE started_at END, "
        "attempt = coalesce(?, attempt) WHERE id = ?",
        [state, detail, to_iso(next_try_at), int(tried), state, to_iso(now), attempt,
         retry_id])


def asked_in_run(db: sqlite_utils.Database, repo: str, run_id: int) -> bool:
    """Whether the bot asked GitHub for a rerun in this workflow run before (any retry of
    it, any state): the run may be running that rerun's attempt, so look before asking."""
    return db.execute("SELECT 1 FROM job_retries WHERE repo = ? AND run_id = ? AND tries > 0 "
                      "LIMIT 1", [repo, run_id]).fetchone() is not None


def rerun_seen(db: sqlite_utils.Database, retry: Retry) -> bool:
    """Whether a newer run of the retry's job at its commit has reported, finished or not:
    someone (a person on GitHub, a Retry click's ``rerun-failed-jobs``) reran it already."""
    return db.execute(
        "SELECT 1 FROM job_results WHERE repo = ? AND job_key = ? AND sha = ? AND workflow = ? "
        "AND job_name = ? AND job_id > ? LIMIT 1",
        [retry.repo, retry.job_key, retry.sha, retry.workflow, retry.job_name,
         retry.job_id]).fetchone() is not None


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
