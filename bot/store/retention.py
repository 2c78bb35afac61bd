"""Retention: what a year of operation may forget, deleted in small batches, the file kept small.

Nothing here decides an alert. Kept: every commit (trunk order is cheap and every
placement needs it), every alert row and its jobs, and whatever an open alert or a
running bisect can still read. Dropped:

- webhook ledger rows (``deliveries``) older than ``deliveries_days``: GitHub offers
  redelivery of recent deliveries only, so an older id can never come back;
- raw results, cells, failure evidence, commit files and job retries of commits more
  than ``keep_commits`` behind the branch head,
  unless an open alert's range or a running bisect reaches that far back (the streak
  rules and the range of any open alert need only what those reach);
- the timelines (and their thread-reply records) of alerts resolved more than
  ``resolved_days`` ago, but for the first and the last event.

Each batch is its own short transaction, so webhooks never wait long for the write
lock; freed pages go back to the file system with ``PRAGMA incremental_vacuum``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from bot.store import history
from bot.store.codec import to_iso
from bot.store.db import Store

BATCH = 2000


@dataclass(frozen=True, slots=True)
class Policy:
    deliveries_days: int = 14
    keep_commits: int = 5000
    resolved_days: int = 90


@dataclass
class Pruned:
    """Rows deleted by one run, per table (for the log and /healthz)."""

    rows: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, count: int) -> None:
        if count:
            self.rows[table] = self.rows.get(table, 0) + count

    def __bool__(self) -> bool:
        return bool(self.rows)


def old_deliveries(db: sqlite_utils.Database, before: datetime) -> int:
    cursor = db.execute(
        "DELETE FROM deliveries WHERE rowid IN (SELECT rowid FROM deliveries "
        "WHERE received_at < ? LIMIT ?)", [to_iso(before), BATCH])
    return cursor.rowcount


def history_cut(db: sqlite_utils.Database, repo: str, branch: str, keep_commits: int
                ) -> int | None:
    """The oldest position whose results must stay, or None when nothing may go.

    ``keep_commits`` behind the head, moved back to the oldest position an open alert
    (its last green commit) or a running bisect (its last good commit) still reads.
    """
    # positions leave gaps (a late commit is placed between two), so count commits
    row = db.execute("SELECT position FROM commits WHERE repo = ? AND branch = ? "
                     "ORDER BY position DESC LIMIT 1 OFFSET ?",
                     [repo, branch, keep_commits]).fetchone()
    if row is None:
        return None
    cut = int(row[0]) + 1  # the commit keep_commits behind the head goes, those after stay
    row = db.execute(
        "SELECT min(coalesce(j.last_green_pos, j.first_failing_pos)) FROM alerts a "
        "JOIN alert_jobs j ON j.alert_id = a.id WHERE a.state != 'resolved' "
        "AND a.repo = ? AND a.branch = ?", [repo, branch]).fetchone()
    if row[0] is not None:
        cut = min(cut, row[0])
    row = db.execute(
        "SELECT min(c.position) FROM bisects b JOIN commits c ON c.repo = b.repo "
        "AND c.branch = b.branch AND c.sha = b.last_good WHERE b.state = 'running' "
        "AND b.repo = ? AND b.branch = ?", [repo, branch]).fetchone()
    if row[0] is not None:
        cut = min(cut, row[0])
    return cut


def old_results(db: sqlite_utils.Database, repo: str, branch: str, cut: int) -> int:
    """Raw results of commits placed before ``cut`` (one batch)."""
    cursor = db.execute(
        "DELETE FROM results WHERE rowid IN (SELECT r.rowid FROM commits c "
        "JOIN ci_shas s ON s.sha = c.sha JOIN results r ON r.sha = s.id "
        "JOIN ci_strings rp ON rp.id = r.repo AND rp.text = c.repo "
        "WHERE c.repo = ? AND c.branch = ? AND c.position < ? LIMIT ?)",
        [repo, branch, cut, BATCH])
    return cursor.rowcount


def old_cells(db: sqlite_utils.Database, repo: str, branch: str, cut: int) -> int:
    ids = history.CELL_BRANCH
    cursor = db.execute(
        f"DELETE FROM cell_rows WHERE {ids} AND (job_key, position) IN "
        f"(SELECT job_key, position FROM cell_rows WHERE {ids} AND position < ? LIMIT ?)",
        [repo, branch, repo, branch, cut, BATCH])
    return cursor.rowcount


# tables keyed by a commit's (repo, sha) whose rows go with that commit's results
BY_COMMIT = ("job_evidence", "commit_files", "job_retries")


def old_rows_by_commit(db: sqlite_utils.Database, table: str, repo: str, branch: str,
                       cut: int) -> int:
    """Rows of ``table`` (one of ``BY_COMMIT``) at commits placed before ``cut`` (one
    batch): failure evidence explains results that are gone, no open range reaches the
    files, and no one reads the retries again, whatever their state."""
    if table not in BY_COMMIT:
        raise ValueError(f"not a table of commits' rows: {table}")
    cursor = db.execute(
        f"DELETE FROM {table} WHERE rowid IN (SELECT t.rowid FROM commits c "
        f"JOIN {table} t ON t.repo = c.repo AND t.sha = c.sha "
        "WHERE c.repo = ? AND c.branch = ? AND c.position < ? LIMIT ?)",
        [repo, branch, cut, BATCH])
    return cursor.rowcount


def old_timelines(db: sqlite_utils.Database, before: datetime) -> tuple[int, int]:
    """Middle events of alerts resolved before ``before``; returns (events, reply records)."""
    doomed = (
        "SELECT e.id FROM alerts a JOIN alert_events e ON e.alert_id = a.id "
        "WHERE a.state = 'resolved' AND a.resolved_at < ? "
        "AND e.id > (SELECT min(id) FROM alert_events WHERE alert_id = a.id) "
        "AND e.id < (SELECT max(id) FROM alert_events WHERE alert_id = a.id) LIMIT ?")
    ids = [row[0] for row in db.execute(doomed, [to_iso(before), BATCH])]
    if not ids:
        return 0, 0
    marks = ",".join("?" * len(ids))
    replies = db.execute(f"DELETE FROM slack_replies WHERE event_id IN ({marks})", ids).rowcount
    db.execute(f"DELETE FROM outbox_events WHERE event_id IN ({marks})", ids)
    events = db.execute(f"DELETE FROM alert_events WHERE id IN ({marks})", ids).rowcount
    return events, replies


def vacuum_step(db: sqlite_utils.Database, pages: int = 2000) -> int:
    """Give up to ``pages`` free pages back to the file system; returns how many are left.

    Outside any transaction. A database created before incremental vacuum was switched
    on (m012) has nothing to give back until a full ``VACUUM``.
    """
    # run to completion: through the sqlite3 module's execute() this pragma frees one page
    # per step and stops after the first, since it returns no rows
    db.conn.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
    return int(db.execute("PRAGMA freelist_count").fetchone()[0])


def branches(db: sqlite_utils.Database) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in db.execute("SELECT DISTINCT repo, branch FROM commits")]


def days_ago(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def run(store: Store, policy: Policy, now: datetime, max_batches: int = 500) -> Pruned:
    """One retention pass: every rule, batch by batch, then the freed pages returned.

    ``max_batches`` bounds one pass (the next pass goes on where this one stopped), so a
    first run on a database that grew for a year cannot hold the scheduler for long.
    """
    pruned = Pruned()
    budget = max_batches

    def drain(table: str, step: Callable[[sqlite_utils.Database], int]) -> None:
        nonlocal budget
        while budget > 0:
            budget -= 1
            with store.transaction() as db:
                count = step(db)
            pruned.add(table, count)
            if count < BATCH:
                return

    drain("deliveries", lambda db: old_deliveries(db, days_ago(now, policy.deliveries_days)))
    for repo, branch in branches(store.db):
        cut = history_cut(store.db, repo, branch, policy.keep_commits)
        if cut is None:
            continue
        drain("job_results", lambda db, r=repo, b=branch, c=cut: old_results(db, r, b, c))
        drain("cells", lambda db, r=repo, b=branch, c=cut: old_cells(db, r, b, c))
        for table in BY_COMMIT:
            drain(table, lambda db, t=table, r=repo, b=branch, c=cut:
                  old_rows_by_commit(db, t, r, b, c))

    def timelines(db: sqlite_utils.Database) -> int:
        events, replies = old_timelines(db, days_ago(now, policy.resolved_days))
        pruned.add("slack_replies", replies)
        return events

    drain("alert_events", timelines)
    # freed pages go back to the file system (bounded too), whether this pass or an
    # earlier one freed them; then the WAL, which grew with the deletes, is truncated
    steps = max_batches
    while vacuum_step(store.db) > 0 and steps > 0:
        steps -= 1
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    return pruned
