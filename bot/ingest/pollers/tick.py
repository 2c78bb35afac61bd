"""One poller tick: its report, and the two ways it ends early (``bot.github.rest``'s errors).

A tick that hits a rate limit pauses the poller (persisted, so restarts respect it);
a tick that hits a 5xx, a timeout or a bad answer just ends, and the next tick
re-reads whatever was not committed. Both say why in ``/healthz``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from bot.github.rest import ApiRateLimited, ApiUnavailable
from bot.ingest.pipeline import IngestReport
from bot.store import pollers as poller_store

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)


@dataclass
class PollReport:
    """What one ``poll_once`` did; tests assert on it, ``/healthz`` shows its summary."""

    name: str
    requests: int = 0
    not_modified: int = 0
    commits_placed: int = 0
    results_stored: int = 0
    runs_read: int = 0
    pages: int = 0
    invalid: int = 0  # rows or cells that failed validation and were left out
    alerts: set[int] = field(default_factory=set)
    skipped: bool = False  # paused: nothing was requested
    paused_until: datetime | None = None
    error: str | None = None

    def add(self, ingest: IngestReport) -> None:
        self.commits_placed += ingest.commits_placed
        self.results_stored += ingest.results_stored
        self.alerts |= ingest.alerts

    def summary(self) -> str:
        skipped = f", {self.invalid} invalid rows or cells skipped" if self.invalid else ""
        return (f"{self.requests} requests ({self.not_modified} not modified), "
                f"{self.commits_placed} commits placed, {self.results_stored} results stored"
                f"{skipped}")


def run_tick(bot: Bot, name: str, body: Callable[[PollReport], None]) -> PollReport:
    """Run ``body`` unless ``name`` is paused; turn how it ended into health and a pause."""
    report = PollReport(name)
    now = bot.clock()
    state = poller_store.load(bot.store.db, name)
    if state.paused_until is not None and state.paused_until > now:
        report.skipped = True
        report.paused_until = state.paused_until
        bot.health.note(name, f"paused until {state.paused_until.isoformat()}: "
                              f"{state.last_error}")
        return report
    try:
        body(report)
    except ApiRateLimited as limited:
        report.paused_until = limited.until
        report.error = limited.reason
        with bot.store.transaction() as db:
            poller_store.pause(db, name, limited.until, limited.reason, bot.clock())
        log.warning("%s paused until %s: %s", name, limited.until.isoformat(), limited.reason)
        bot.health.error(name, limited.reason)
        bot.health.note(name, f"paused until {limited.until.isoformat()}: {limited.reason}")
    except ApiUnavailable as exc:
        report.error = str(exc)
        log.warning("%s tick ended early, retrying next tick: %s", name, exc)
        with bot.store.transaction() as db:
            poller_store.record_error(db, name, report.error, bot.clock())
        bot.health.error(name, report.error)
    else:
        if state.last_error is not None:
            with bot.store.transaction() as db:
                poller_store.record_error(db, name, None, bot.clock())
        bot.health.ok(name, note=report.summary())
    finally:
        if report.alerts:
            bot.alerts_changed(set(report.alerts))
    return report
