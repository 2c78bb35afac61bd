"""The short alert id people read and type: ``A12`` for alert 12 (``12`` is accepted too)."""

from __future__ import annotations

import re

_SHORT_ID = re.compile(r"^[Aa]?(\d{1,9})$")


def short_id(alert_id: int) -> str:
    """What people type: ``A12``. Short, unambiguous, stable."""
    return f"A{alert_id}"


def parse_short_id(text: str) -> int | None:
    """The alert number in ``A12``, ``a12`` or ``12``; None when ``text`` is not an alert id."""
    match = _SHORT_ID.match(text)
    return int(match.group(1)) if match else None
