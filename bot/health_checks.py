"""The conditions ``/healthz`` checks itself, because no source would report them in time.

A full disk, a read-only or long-locked database, a file descriptor leak, a sender that
stopped moving and a poller failing on every tick each stop the bot doing its job while
every request it answers still looks fine; each becomes a named problem (503).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.health import Health
from bot.store.db import Store

POLLER_FAILURES = 3  # a poller failing this many ticks in a row is broken, not unlucky
FD_ALARM = 0.8  # share of the file descriptor limit in use that means a leak (or an attack)
PERIODIC = ("github-poller", "hud-poller", "job:")


def open_fds() -> int | None:
    """File descriptors this process has open (Linux), or None where that cannot be read."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def fd_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class HealthChecks:
    """Runs the checks (in the health lane: they touch the disk and the database)."""

    store: Store
    health: Health
    disk_free_min_bytes: int
    lock_alarm_s: float
    sender_stuck_after_s: float
    sender_stuck_for: Callable[[], float | None]
    _locked_since: float | None = field(default=None, repr=False)

    def run(self) -> tuple[dict[str, str], dict[str, Any]]:
        """(problems, facts): each problem names its cause; facts are shown either way."""
        problems: dict[str, str] = {}
        facts: dict[str, Any] = {}
        folder = Path(self.store.path).resolve().parent
        try:
            stats = os.statvfs(folder)
            free = stats.f_bavail * stats.f_frsize
            facts["disk_free_bytes"] = free
            if free < self.disk_free_min_bytes:
                problems["disk"] = (f"disk full: {free // 2**20} MiB free in {folder}, below "
                                    f"DISK_FREE_MIN_BYTES ({self.disk_free_min_bytes // 2**20} "
                                    "MiB); writes will fail")
        except OSError as exc:
            problems["disk"] = f"cannot read free space of {folder}: {exc}"
        write = self.store.probe_write()
        now = time.monotonic()
        if write == "locked":
            self._locked_since = self._locked_since or now
            held = now - self._locked_since
            facts["database_write"] = f"locked for {held:.0f}s"
            if held >= self.lock_alarm_s:
                problems["database"] = (f"database write lock unavailable for {held:.0f}s "
                                        f"(another process holds a write transaction); "
                                        "webhooks and triage cannot be stored")
        else:
            self._locked_since = None
            facts["database_write"] = write or "ok"
            if write is not None:
                if write.startswith("read-only"):
                    cause = ("database is read-only: make the file, its -wal and -shm files and "
                             "its folder writable by this user")
                elif write.startswith("full"):
                    cause = "database cannot grow: disk full"
                else:
                    cause = f"database cannot be written: {write}"
                problems["database"] = f"{cause} ({write})"
        fds, limit = open_fds(), fd_limit()
        facts["open_fds"] = fds
        facts["fd_limit"] = limit
        facts["db_connections"] = self.store.open_connections()
        if fds is not None and fds >= FD_ALARM * limit:
            problems["fds"] = (f"{fds} of {limit} file descriptors open (over "
                               f"{FD_ALARM:.0%}): a leak or too many idle connections")
        stuck = self.sender_stuck_for()
        if stuck is not None and stuck >= self.sender_stuck_after_s:
            problems["sender"] = ("the Slack sender thread died" if stuck == float("inf") else
                                  f"the Slack sender has made no progress for {stuck:.0f}s "
                                  f"(SENDER_STUCK_AFTER is {self.sender_stuck_after_s:g}s)")
        problems.update(self.health.failing(PERIODIC, POLLER_FAILURES))
        return problems, facts
