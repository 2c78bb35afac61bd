"""Human durations (``30m``, ``2h``, ``1d``, ``1h30m``) as used in config and slash commands."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """Parse ``1h30m``-style text; raises ValueError naming the text when it is not one."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned):
        raise ValueError(f"{text!r} is not a duration; use forms like 30m, 2h, 1d or 1h30m")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(cleaned))
    if seconds <= 0:
        raise ValueError(f"{text!r} is not a positive duration")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """``45m``, ``3h12m``, ``2d4h``, ``30s``: the largest unit and, below a minute's, the next.

    Two adjacent units are enough to tell "just broke" from "broken all weekend", so a
    day and one minute reads ``1d`` and ninety seconds ``1m``; seconds show only alone.
    """
    total = max(0, int(delta.total_seconds()))
    days, rest = divmod(total, _UNITS["d"])
    hours, rest = divmod(rest, _UNITS["h"])
    minutes, seconds = divmod(rest, _UNITS["m"])
    if days:
        return f"{days}d{hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h{minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"
