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
    """``3h12m``, ``45m``, ``2d4h``: the two largest units, for people to read."""
    seconds = max(0, int(delta.total_seconds()))
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return "".join(parts)
