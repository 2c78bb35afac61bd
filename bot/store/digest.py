"""The daily digest's numbers for a set of routes, and which digests were already sent."""

from __future__ import annotations

import statistics
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from bot.store.codec import from_iso, to_iso

LONGEST_SHOWN = 3


@dataclass(frozen=True, slots=True)
class DigestStreak:
    alert_id: int
    job_key: str
    length: int


@dataclass(frozen=True, slots=True)
class DigestStats:
    """One window of one channel's routes; medians in seconds, None when nothing to measure."""

    opened: int
    resolved: int
    still_open: int
    median_ack_s: float | None
    median_resolve_s: float | None
    longest: tuple[DigestStreak, ...]


def digest_stats(db: sqlite_utils.Database, routes: Collection[str], since: datetime,
                 until: datetime) -> DigestStats:
    """Counts and medians over ``[since, until)``; streaks of alerts open at any time in it."""
    marks = ",".join("?" * len(routes)) or "NULL"
    rows = list(db.query(
        f"SELECT id, opened_at, acked_at, resolved_at FROM alerts WHERE route IN ({marks}) "
        "AND opened_at < ? AND (resolved_at IS NULL OR resolved_at >= ?)",
        [*routes, to_iso(until), to_iso(since)]))
    lo, hi = to_iso(since) or "", to_iso(until) or ""

    def inside(value: str | None) -> bool:
        return value is not None and lo <= value < hi

    ack_s = [_seconds(r["opened_at"], r["acked_at"]) for r in rows if inside(r["acked_at"])]
    resolve_s = [_seconds(r["opened_at"], r["resolved_at"]) for r in rows
                 if inside(r["resolved_at"])]
    ids = [r["id"] for r in rows]
    longest: list[DigestStreak] = []
    if ids:
        longest = [DigestStreak(*row) for row in db.execute(
            f"SELECT alert_id, job_key, streak FROM alert_jobs WHERE alert_id IN "
            f"({','.join('?' * len(ids))}) ORDER BY streak DESC, alert_id LIMIT ?",
            [*ids, LONGEST_SHOWN])]
    return DigestStats(
        opened=sum(inside(r["opened_at"]) for r in rows),
        resolved=len(resolve_s),
        still_open=sum(r["resolved_at"] is None for r in rows),
        median_ack_s=statistics.median(ack_s) if ack_s else None,
        median_resolve_s=statistics.median(resolve_s) if resolve_s else None,
        longest=tuple(longest),
    )


def _seconds(start: str, end: str) -> float:
    begin, finish = from_iso(start), from_iso(end)
    assert begin is not None and finish is not None
    return (finish - begin).total_seconds()


def claim(db: sqlite_utils.Database, channel: str, day: str, now: datetime) -> bool:
    """Reserve today's digest for ``channel``; False when it was already sent (or is being)."""
    cursor = db.execute("INSERT OR IGNORE INTO digests (channel, day, sent_at) VALUES (?, ?, ?)",
                        [channel, day, to_iso(now)])
    return cursor.rowcount == 1


def release(db: sqlite_utils.Database, channel: str, day: str) -> None:
    """Give a failed digest back, so the next tick tries again."""
    db.execute("DELETE FROM digests WHERE channel = ? AND day = ?", [channel, day])
