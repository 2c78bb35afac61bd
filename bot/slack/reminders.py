"""Reminders, escalation and snooze expiry (and the optional daily digest) as scheduler jobs.

Each tick derives what is due from SQLite (``bot.domain.triage.due_nudges``) and
records it as alert events, which the sender turns into thread replies. Nothing is
kept in memory, so a restart loses nothing; every nudge advances a stored counter
under a compare-and-set, so nothing is sent twice; and ``bot.schedule`` runs the jobs
only in the process holding the ``scheduler`` lease, so two processes never both nudge.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from bot.slack.digest import DIGEST_INTERVAL_S, run_digest
from bot.store import triage as triage_store

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

NUDGE_INTERVAL_S = 60


def register_jobs(bot: Bot) -> None:
    bot.scheduler.every("nudges", NUDGE_INTERVAL_S, lambda: run_nudges(bot))
    if bot.settings.digest_hour_utc is not None:
        bot.scheduler.every("digest", DIGEST_INTERVAL_S, lambda: run_digest(bot))


def run_nudges(bot: Bot, now: datetime | None = None) -> dict[int, str]:
    """Send what is due for every open alert at ``now``; returns alert id -> event kind.

    One transaction per alert: a slow tick never holds the write lock for long.
    """
    now = now or bot.clock()
    sent: dict[int, str] = {}
    for alert_id in triage_store.open_alert_ids(bot.store.db):
        with bot.store.transaction() as db:
            kind = triage_store.send_due_nudge(db, alert_id, bot.routes, now)
        if kind is not None:
            sent[alert_id] = kind
    if sent:
        log.info("nudges: %s", ", ".join(f"A{i} {kind}" for i, kind in sorted(sent.items())))
        bot.alerts_changed(set(sent))
    return sent
