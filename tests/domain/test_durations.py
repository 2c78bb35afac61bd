"""Duration text: one rule for config, slash commands and every message that shows an age."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.domain.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30s"), (45 * 60, "45m"), (3 * 3600, "3h"), (3 * 3600 + 12 * 60, "3h12m"),
     (2 * 86400 + 4 * 3600 + 59, "2d4h"), (2 * 86400, "2d"), (-5, "0s"),
     (86400 + 60, "1d"), (90, "1m")],
)  # fmt: skip
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text


def test_parse_duration_round_trips_what_format_duration_writes() -> None:
    for text in ("30s", "45m", "3h", "3h12m", "2d4h", "2d"):
        assert format_duration(parse_duration(text)) == text
