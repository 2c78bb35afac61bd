"""What /healthz reports: per-source last success and last error, plus named problems.

Sources (webhooks, pollers, the Slack sender) report here instead of only logging,
so an operator sees in one request why alerts stopped flowing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class SourceHealth:
    last_success: datetime | None = None
    last_error: datetime | None = None
    error: str | None = None
    note: str | None = None


@dataclass
class Health:
    sources: dict[str, SourceHealth] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)  # name -> why (makes /healthz 503)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, source: str, note: str | None = None) -> None:
        with self._lock:
            entry = self.sources.setdefault(source, SourceHealth())
            entry.last_success = datetime.now(UTC)
            entry.note = note

    def error(self, source: str, message: str) -> None:
        with self._lock:
            entry = self.sources.setdefault(source, SourceHealth())
            entry.last_error = datetime.now(UTC)
            entry.error = message

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

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sources": {
                    name: {
                        "last_success": _iso(s.last_success),
                        "last_error": _iso(s.last_error),
                        "error": s.error,
                        "note": s.note,
                    }
                    for name, s in sorted(self.sources.items())
                },
                "problems": dict(self.problems),
            }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()
