"""Leases in SQLite: which process runs the singletons (Slack sender, scheduler).

Two ``serve`` processes on one database must not both send or both remind; the
lease row decides, and a crashed holder's lease simply expires.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlite_utils

from bot.store.codec import to_iso


def acquire(db: sqlite_utils.Database, name: str, holder: str, ttl: timedelta,
            now: datetime) -> bool:
    """Take or renew the lease; True when ``holder`` has it until ``now + ttl``."""
    db.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at WHERE leases.holder = excluded.holder "
        "OR leases.expires_at < ?",
        [name, holder, to_iso(now + ttl), to_iso(now)],
    )
    row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
    return row is not None and row[0] == holder


def release(db: sqlite_utils.Database, name: str, holder: str) -> None:
    db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])


def holder_of(db: sqlite_utils.Database, name: str) -> str | None:
    row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
    return None if row is None else row[0]
