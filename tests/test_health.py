"""What /healthz is told: problems make it unhealthy, notices only explain."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.alerts import TooOld
from bot.domain.model import CellStatus, PlacedCell
from bot.health import Health, TooOldNotices

NOW = datetime(2025, 12, 11, 12, 0, tzinfo=UTC)


def quiet(job: str, sha: str, age_h: int = 50) -> TooOld:
    failure = PlacedCell(7, sha, CellStatus.FAILURE, NOW - timedelta(hours=age_h))
    return TooOld("inductor", f"inductor / test ({job})", 4, failure, timedelta(hours=24))


def test_too_old_streaks_are_logged_once_per_newest_failure_and_noticed(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="bot.health")
    health = Health()
    notices = TooOldNotices(health, lambda: NOW, shown=2)
    notices([quiet("a", "a" * 40)])
    notices([quiet("a", "a" * 40)])  # the same streak evaluated again
    notices([quiet("a", "b" * 40, age_h=30)])  # it grew: a newer failure, still too old
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and "(bbbbbbbbbb) is 1d6h old" in logged[1]
    notices([quiet("b", "c" * 40), quiet("c", "d" * 40)])
    snapshot = health.snapshot()
    assert snapshot["problems"] == {}
    shown = snapshot["notices"]["too_old"]
    assert "test (a)" not in shown and "test (b)" in shown and "test (c)" in shown
    assert shown.index("test (b)") < shown.index("test (c)"), "latest last"
