"""The running bot: one object that wires settings, store, ingest, Slack and the scheduler.

Tests build it with their own settings and clock; ``python -m bot serve`` builds it
from the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.config import Settings
from bot.health import Health
from bot.ingest.pipeline import Ingestor
from bot.store.db import Store

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Bot:
    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.clock = clock
        self.health = Health()
        self.store = Store(settings.database_path)
        self.ingestor = Ingestor(self.store, settings.routes, clock, on_change=self.alerts_changed)

    def alerts_changed(self, alert_ids: set[int]) -> None:
        """Hook for delivery: called after a transaction changed these alerts."""
        log.debug("alerts changed: %s", sorted(alert_ids))

    def start(self) -> None:
        pending = self.store.pending_migrations()
        if pending:
            raise RuntimeError(f"database {self.settings.database_path} needs migrations "
                               f"{pending}: run `python -m bot migrate`")

    def stop(self) -> None:
        self.store.close()

    def health_report(self) -> dict[str, Any]:
        report: dict[str, Any] = {"ok": True}
        try:
            self.store.db.execute("SELECT 1").fetchone()
            report["database"] = "ok"
        except Exception as exc:  # any failure here means unhealthy, whatever its type
            report["database"] = f"error: {exc}"
            report["ok"] = False
        report.update(self.health.snapshot())
        if report["problems"]:
            report["ok"] = False
        return report
