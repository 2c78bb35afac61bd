"""Slack requests already handled, so a retried delivery (``X-Slack-Retry-Num``) runs once."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlite_utils

from bot.store.codec import to_iso

KEEP = timedelta(days=1)  # Slack retries within minutes; a day is plenty


def first_time(db: sqlite_utils.Database, key: str, now: datetime) -> bool:
    """Record ``key``; True only for the first caller, whichever process it runs in.

    The primary key decides, so two deliveries racing in two threads cannot both win.
    """
    db.execute("DELETE FROM processed_interactions WHERE at < ?", [to_iso(now - KEEP)])
    cursor = db.execute("INSERT OR IGNORE INTO processed_interactions (key, at) VALUES (?, ?)",
                        [key, to_iso(now)])
    return cursor.rowcount == 1
