"""Everything known about one alert, read in one place for every view of it.

Replay output, the Slack message and the slash command all show the same facts;
reading them here keeps those views from drifting apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain.cells import FlakySeen, flaky_seen
from bot.store import history
from bot.store import results as results_store
from bot.store.codec import from_iso, from_json_list
from bot.store.history import PlacedCommit

SUSPECTS_SHOWN = 200  # suspects read for views; the count is always exact


@dataclass(frozen=True, slots=True)
class JobDetail:
    key: str
    streak: int
    first_failing_sha: str
    newest_failing_sha: str
    last_green_sha: str | None
    recovered: bool
    recovered_sha: str | None
    log_url: str | None
    html_url: str | None
    failure_line: str | None
    flaky: bool
    flaky_sha: str | None = None  # the newest commit where a shard failed and passed
    flaky_url: str | None = None  # the failed run there (log, else page), when known
    # late results showed fewer than ``threshold`` failing commits in a row: the bot had
    # alerted on what it knew, so the job stays listed (recovered), but it is no member
    withdrawn: bool = False


@dataclass(frozen=True, slots=True)
class AlertDetail:
    id: int
    route: str
    repo: str
    branch: str
    team: str
    priority: str
    kind: str
    title: str | None
    state: str
    opened_at: datetime
    resolved_at: datetime | None
    resolved_sha: str | None
    resolved_by: str | None
    resolve_reason: str | None
    version: int
    jobs: tuple[JobDetail, ...]
    last_green: PlacedCommit | None
    first_red: PlacedCommit | None
    suspects: tuple[PlacedCommit, ...]  # oldest first, at most SUSPECTS_SHOWN
    suspect_count: int
    row: dict[str, Any]  # the whole alerts row, for columns later migrations add
    # late results took every job back (no streak after all, or merged into another
    # alert): an alert a live bot showed for a while, that the facts do not hold
    withdrawn: bool = False


def alert_detail(db: sqlite_utils.Database, alert_id: int) -> AlertDetail | None:
    rows = list(db.query("SELECT * FROM alerts WHERE id = ?", [alert_id]))
    if not rows:
        return None
    row = rows[0]
    repo, branch = row["repo"], row["branch"]
    jobs = tuple(_job(db, repo, branch, r) for r in db.execute(
        "SELECT job_key, streak, first_failing_sha, newest_failing_sha, last_green_sha, "
        "recovered, recovered_sha, last_green_pos, recovered_pos, newest_failing_pos, "
        "withdrawn FROM alert_jobs WHERE alert_id = ? ORDER BY joined_at, job_key",
        [alert_id]))
    low, high = row["range_last_green"], row["range_first_failing"]
    suspects: tuple[PlacedCommit, ...] = ()
    count = 0
    first_red = last_green = None
    if high is not None:
        suspects = tuple(history.commits_between(db, repo, branch, low, high, SUSPECTS_SHOWN))
        count = history.count_between(db, repo, branch, low, high)
        first_red = _at(db, repo, branch, high)
        last_green = _at(db, repo, branch, low) if low is not None else None
    return AlertDetail(
        id=row["id"], route=row["route"], repo=repo, branch=branch, team=row["team"],
        priority=row["priority"], kind=row["kind"], title=row["title"], state=row["state"],
        opened_at=from_iso(row["opened_at"]) or datetime.min,
        resolved_at=from_iso(row["resolved_at"]), resolved_sha=row["resolved_sha"],
        resolved_by=row["resolved_by"], resolve_reason=row["resolve_reason"],
        version=row["version"], jobs=jobs, last_green=last_green, first_red=first_red,
        suspects=suspects, suspect_count=count, row=row,
        withdrawn=row["kind"] == "streak" and db.execute(
            "SELECT 1 FROM alert_jobs WHERE alert_id = ? AND withdrawn = 0 LIMIT 1",
            [alert_id]).fetchone() is None,
    )


def _at(db: sqlite_utils.Database, repo: str, branch: str, position: int) -> PlacedCommit | None:
    found = history.commits_between(db, repo, branch, position - 1, position, 1)
    return found[0] if found else None


def _job(db: sqlite_utils.Database, repo: str, branch: str, r: tuple) -> JobDetail:
    key, streak, ff, nf, lg, recovered, recovered_sha, lg_pos, end_pos, nf_pos, withdrawn = r
    failed = db.execute(
        "SELECT log_url, html_url, failure_lines FROM job_results WHERE repo = ? AND job_key = ? "
        "AND sha = ? AND status = 'completed' AND conclusion IN "
        "('failure', 'timed_out', 'startup_failure') ORDER BY attempt DESC, job_id DESC LIMIT 1",
        [repo, key, nf]).fetchone()
    log_url = html_url = line = None
    if failed is not None:
        log_url, html_url = failed[0], failed[1]
        lines = from_json_list(failed[2])
        line = lines[0] if lines else None
    seen = _flaky_seen(db, repo, branch, key, lg_pos, end_pos if end_pos is not None else nf_pos)
    flaky_url = None
    if seen is not None:
        run = seen.failed or seen.passed
        flaky_url = run.log_url or run.html_url
    return JobDetail(key, streak, ff, nf, lg, bool(recovered), recovered_sha, log_url, html_url,
                     line, seen is not None, None if seen is None else seen.sha, flaky_url,
                     bool(withdrawn))


FLAKY_LOOKBACK = 30  # newest commits of a streak searched for flaky evidence


def _flaky_seen(db: sqlite_utils.Database, repo: str, branch: str, key: str,
                low: int | None, high: int) -> FlakySeen | None:
    """The newest flaky shard of the job from its last green to where it ended (or its
    newest failure): evidence that it may be flaky, with the failed run to look at."""
    window = history.commits_between(db, repo, branch, None if low is None else low - 1, high)
    shas = [c.sha for c in window[-FLAKY_LOOKBACK:]]
    if low is not None and window and window[0].position == low and window[0].sha not in shas:
        shas.insert(0, window[0].sha)  # the last green itself, however long the streak
    by_sha = results_store.results_of_job(db, repo, key, shas)
    for sha in reversed(shas):
        found = flaky_seen(by_sha.get(sha, ()))
        if found:
            return found[0]
    return None


def alert_ids(db: sqlite_utils.Database) -> list[int]:
    return [row[0] for row in db.execute("SELECT id FROM alerts ORDER BY id")]
