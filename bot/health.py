"""What /healthz reports: per-source last success and last error, plus named problems.

Sources (webhooks, pollers, the Slack sender) report here instead of only logging,
so an operator sees in one request why alerts stopped flowing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.domain.alerts import TooOld

log = logging.getLogger(__name__)


@dataclass
class SourceHealth:
    last_success: datetime | None = None
    last_error: datetime | None = None
    error: str | None = None
    note: str | None = None
    failures_in_row: int = 0  # errors since the last success


@dataclass
class Health:
    sources: dict[str, SourceHealth] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # name -> why (makes /healthz 503)
    notices: dict[str, str] = field(default_factory=dict)  # name -> what (informational only)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, source: str, note: str | None = None) -> None:
        with self._lock:
            entry = self.sources.setdefault(source, SourceHealth())
            entry.last_success = datetime.now(UTC)
            entry.note = note
            entry.failures_in_row = 0

    def error(self, source: str, message: str) -> None:
        with self._lock:
            entry = self.sources.setdefault(source, SourceHealth())
            entry.last_error = datetime.now(UTC)
            entry.error = message
            entry.failures_in_row += 1

    def failing(self, prefixes: tuple[str, ...], at_least: int) -> dict[str, str]:
        """Sources named with one of ``prefixes`` whose last ``at_least`` reports all failed."""
        with self._lock:
            return {name: f"failed {s.failures_in_row} times in a row, last: {s.error}"
                    for name, s in self.sources.items()
                    if name.startswith(prefixes) and s.failures_in_row >= at_least}

    def note(self, source: str, message: str | None) -> None:
        with self._lock:
            self.sources.setdefault(source, SourceHealth()).note = message

    def problem(self, name: str, why: str | None) -> None:
        """Set (or clear, with None) a problem that makes the bot unhealthy."""
        with self._lock:
            if why is None:
                self.problems.pop(name, None)
            else:
                self.problems[name] = why

    def notice(self, name: str, what: str | None) -> None:
        """Set (or clear, with None) something an operator should know that is not a fault.

        Notices explain why the bot did nothing (old data, say); they never make the
        bot unhealthy.
        """
        with self._lock:
            if what is None:
                self.notices.pop(name, None)
            else:
                self.notices[name] = what

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sources": {
                    name: {
                        "last_success": _iso(s.last_success),
                        "last_error": _iso(s.last_error),
                        "error": s.error,
                        "note": s.note,
                        "failures_in_row": s.failures_in_row,
                    }
                    for name, s in sorted(self.sources.items())
                },
                "problems": dict(self.problems),
                "notices": dict(self.notices),
            }


class TooOldNotices:
    """Says why a streak past the threshold opened no alert: its newest failure is too old.

    Logged once per newest failure, and the latest few kept in ``/healthz`` as the
    ``too_old`` notice. Old breakages are not news, so the bot stays healthy; but whoever
    fed it two-day-old data sees no alert and must learn why.
    """

    def __init__(self, health: Health, clock: Callable[[], datetime], shown: int = 5) -> None:
        self.health = health
        self.clock = clock
        self.shown = shown
        self._lock = threading.Lock()
        self._logged: dict[tuple[str, str], str] = {}  # (route, job key) -> newest failure sha
        self._lines: dict[tuple[str, str], str] = {}  # latest last

    def __call__(self, streaks: list[TooOld]) -> None:
        now = self.clock()
        with self._lock:
            for streak in streaks:
                key = (streak.route, streak.job_key)
                line = streak.describe(now)
                if self._logged.get(key) != streak.newest_failure.sha:
                    self._logged[key] = streak.newest_failure.sha
                    log.info("no alert: %s", line)
                self._lines.pop(key, None)
                self._lines[key] = line
            for key in list(self._lines)[:-self.shown]:
                del self._lines[key]
            text = "; ".join(self._lines.values())
        self.health.notice("too_old", text)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
