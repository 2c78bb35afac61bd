"""Pollers' resumable state: cursors, ETags, rate-limit pauses and the workflow runs already read.

Writers take the caller's transaction, so a cursor or ETag moves in the same commit
as the data it covers: a tick that fails half-way re-reads instead of skipping.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from bot.store.codec import from_iso, to_iso


@dataclass(frozen=True, slots=True)
class PollerState:
    name: str
    cursor: str | None = None
    etags: dict[str, str] = field(default_factory=dict)
    paused_until: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class SeenRun:
    """What the poller last ingested of one workflow run."""

    version: str  # updated_at, attempt, status and conclusion: changes when the run does
    completed: bool
    jobs_etag: str | None


@dataclass(frozen=True, slots=True)
class UnfinishedRun:
    """A workflow run the poller saw in progress: its jobs may still change."""

    run_id: int
    workflow: str
    head_sha: str
    version: str
    created_at: datetime | None


def load(db: sqlite_utils.Database, name: str) -> PollerState:
    row = db.execute("SELECT cursor, etag_json, paused_until, last_error FROM poller_state "
                     "WHERE name = ?", [name]).fetchone()
    if row is None:
        return PollerState(name)
    cursor, etags, paused_until, last_error = row
    return PollerState(name, cursor, json.loads(etags or "{}"), from_iso(paused_until),
                       last_error)


def _upsert(db: sqlite_utils.Database, name: str, now: datetime, column: str,
            value: object) -> None:
    db.execute(
        f"INSERT INTO poller_state (name, {column}, updated_at) VALUES (?, ?, ?) "
        f"ON CONFLICT (name) DO UPDATE SET {column} = excluded.{column}, "
        "updated_at = excluded.updated_at",
        [name, value, to_iso(now)],
    )


def save_cursor(db: sqlite_utils.Database, name: str, cursor: str | None, now: datetime) -> None:
    _upsert(db, name, now, "cursor", cursor)


def save_etag(db: sqlite_utils.Database, name: str, url: str, etag: str | None,
              now: datetime) -> None:
    etags = dict(load(db, name).etags)
    if etag:
        etags[url] = etag
    else:
        etags.pop(url, None)
    _upsert(db, name, now, "etag_json", json.dumps(etags, sort_keys=True))


def pause(db: sqlite_utils.Database, name: str, until: datetime, reason: str,
          now: datetime) -> None:
    """Stop polling until ``until``; survives restarts so a restart loop cannot hammer."""
    _upsert(db, name, now, "paused_until", to_iso(until))
    _upsert(db, name, now, "last_error", reason)


def record_error(db: sqlite_utils.Database, name: str, reason: str | None, now: datetime) -> None:
    _upsert(db, name, now, "last_error", reason)


def seen_run(db: sqlite_utils.Database, repo: str, run_id: int) -> SeenRun | None:
    row = db.execute("SELECT version, completed, jobs_etag FROM github_runs "
                     "WHERE repo = ? AND run_id = ?", [repo, run_id]).fetchone()
    return None if row is None else SeenRun(row[0], bool(row[1]), row[2])


def save_run(db: sqlite_utils.Database, repo: str, run_id: int, *, workflow: str, head_sha: str,
             version: str, completed: bool, jobs_etag: str | None, created_at: datetime | None,
             now: datetime) -> None:
    db.execute(
        "INSERT INTO github_runs (repo, run_id, workflow, head_sha, version, completed, "
        "jobs_etag, created_at, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (repo, run_id) DO UPDATE SET version = excluded.version, "
        "completed = excluded.completed, jobs_etag = excluded.jobs_etag, "
        "seen_at = excluded.seen_at",
        [repo, run_id, workflow, head_sha, version, int(completed), jobs_etag,
         to_iso(created_at), to_iso(now)],
    )


def oldest_unfinished_run(db: sqlite_utils.Database, repo: str) -> datetime | None:
    """Creation time of the oldest run still in progress: listing must reach back to it."""
    row = db.execute("SELECT min(created_at) FROM github_runs WHERE repo = ? AND completed = 0",
                     [repo]).fetchone()
    return from_iso(row[0]) if row else None


def unfinished_runs(db: sqlite_utils.Database, repo: str,
                    since: datetime) -> list[UnfinishedRun]:
    """Runs last seen in progress that were created since ``since``, by run id."""
    return [
        UnfinishedRun(row[0], row[1], row[2], row[3], from_iso(row[4]))
        for row in db.execute(
            "SELECT run_id, workflow, head_sha, version, created_at FROM github_runs "
            "WHERE repo = ? AND completed = 0 AND created_at >= ? ORDER BY run_id",
            [repo, to_iso(since)])
    ]
