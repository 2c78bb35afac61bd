"""The webhook ledger: one ``deliveries`` row per (source, delivery id), written with the ingest.

The row is inserted in the same transaction as the data the delivery carries, so a
delivery is either fully stored and recorded, or neither; a redelivery finds the row
and changes nothing.
"""

from __future__ import annotations

from datetime import datetime

import sqlite_utils

from bot.store.codec import to_iso


def claim(db: sqlite_utils.Database, source: str, delivery_id: str, event: str,
          now: datetime) -> bool:
    """Record a delivery as being processed; False when it was recorded before (a redelivery)."""
    cursor = db.execute(
        "INSERT INTO deliveries (source, delivery_id, event, received_at, outcome) "
        "VALUES (?, ?, ?, ?, 'processing') ON CONFLICT (source, delivery_id) DO NOTHING",
        [source, delivery_id, event, to_iso(now)],
    )
    return cursor.rowcount == 1


def settle(db: sqlite_utils.Database, source: str, delivery_id: str, outcome: str,
           detail: str | None = None) -> None:
    """What the delivery did (``stored``, ``ignored``, ...), for operators reading the table."""
    db.execute("UPDATE deliveries SET outcome = ?, detail = ? WHERE source = ? AND delivery_id = ?",
               [outcome, detail, source, delivery_id])
