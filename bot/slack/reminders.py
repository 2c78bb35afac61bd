"""Reminders, escalation and snooze expiry: the "nudges" job the running bot schedules.

Each tick derives what is due from SQLite (``bot.domain.triage.due_nudges``) and
records it as alert events, which the sender turns into thread replies. Nothing is
kept in memory, so a restart loses nothing; every nudge advances a stored counter
under a compare-and-set, so nothing is sent twice; and ``bot.schedule`` runs the jobs
only in the process holding the ``scheduler`` lease, so two processes never both nudge.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from bot.domain.alert_ids import short_id
from bot.domain.route import Route
from bot.store import triage as triage_store
from bot.store.db import Store

log = logging.getLogger(__name__)

NUDGE_INTERVAL_S = 60


def run_nudges(store: Store, routes: Mapping[str, Route], now: datetime,
               on_change: Callable[[set[int]], None]) -> dict[int, str]:
    """Send what is due for every open alert at ``now``; returns alert id -> event kind.

    One transaction per alert: a slow tick never holds the write lock for long.
    """
    sent: dict[int, str] = {}
    for alert_id in triage_store.open_alert_ids(store.db):
        # read outside the write transaction: webhooks wait on the write lock, not on this
        sha = triage_store.snooze_sha(store.db, alert_id)
        seen = (sha,) if sha and triage_store.sha_has_results(store.db, alert_id, sha) else ()
        with store.transaction() as db:
            kind = triage_store.send_due_nudge(db, alert_id, routes, now, seen_shas=seen)
        if kind is not None:
            sent[alert_id] = kind
    if sent:
        log.info("nudges: %s",
                 ", ".join(f"{short_id(i)} {kind}" for i, kind in sorted(sent.items())))
        on_change(set(sent))
    return sent
