"""Periodic work (pollers, reminders, snooze expiry, digests) on one APScheduler.

Every job first renews the ``scheduler`` lease in SQLite and does nothing unless this
process holds it, so two ``serve`` processes on one database never both poll or both
remind. Jobs derive what to do from the database on each tick; nothing they need is
kept only in memory, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

from bot.health import Health
from bot.store import leases
from bot.store.db import Store

log = logging.getLogger(__name__)

LEASE = "scheduler"


class Scheduler:
    def __init__(self, store: Store, health: Health,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.health = health
        self.clock = clock
        self.holder = leases.holder_id()
        self._aps = BackgroundScheduler(timezone=UTC)
        self.jobs: dict[str, Callable[[], object]] = {}

    def every(self, name: str, seconds: float, fn: Callable[[], object],
              first_in: float = 1.0) -> None:
        """Run ``fn`` every ``seconds`` while this process holds the scheduler lease."""
        self.jobs[name] = fn
        self._aps.add_job(self._guarded, "interval", args=[name, fn], seconds=seconds,
                          id=name, replace_existing=True, max_instances=1, coalesce=True,
                          next_run_time=datetime.now(UTC) + timedelta(seconds=first_in))

    def holds_lease(self) -> bool:
        with self.store.transaction() as db:
            return leases.acquire(db, LEASE, self.holder, timedelta(minutes=2), self.clock())

    def run_now(self, name: str) -> object:
        """Run one job in the calling thread (tests and the CLI use this)."""
        return self.jobs[name]()

    def _guarded(self, name: str, fn: Callable[[], object]) -> None:
        try:
            if not self.holds_lease():
                return
            fn()
        except Exception as exc:  # one failing tick must not stop the schedule
            log.exception("scheduled job %s failed", name)
            self.health.error(f"job:{name}", f"{type(exc).__name__}: {exc}")

    def start(self) -> None:
        self._aps.start()

    def stop(self, timeout: float = 10.0) -> None:
        """No new runs; wait up to ``timeout`` for running jobs, then release the lease.

        A job still running after that (a poller stuck on the network) is left to its
        daemon thread; it holds no lease any more, and its writes are whole transactions.
        """
        if self._aps.running:
            self._aps.pause()
            waiter = threading.Thread(target=self._aps.shutdown, kwargs={"wait": True},
                                      name="scheduler-stop", daemon=True)
            waiter.start()
            waiter.join(timeout)
            if waiter.is_alive():
                log.warning("scheduled jobs still running after %gs; stopping without them",
                            timeout)
        try:
            with self.store.transaction() as db:
                leases.release(db, LEASE, self.holder)
        except Exception:  # stopping must not fail because the database went away
            log.debug("could not release scheduler lease", exc_info=True)
