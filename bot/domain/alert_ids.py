"""The short alert id people read and type: ``A12`` for alert 12 (``12`` is accepted too)."""

from __future__ import annotations

import re

# ASCII digits only: ``\d`` would take Arabic-Indic and other Unicode digits, and int()
# would take signs and spaces; an alert id is exactly what short_id() writes
_SHORT_ID = re.compile(r"[Aa]?([0-9]{1,9})")


def short_id(alert_id: int) -> str:
    """What people type: ``A12``. Short, unambiguous, stable."""
    return f"A{alert_id}"


def parse_short_id(text: str) -> int | None:
    """The alert number in ``A12``, ``a12`` or ``12``; None when ``text`` is not an alert id."""
    match = _SHORT_ID.fullmatch(text)
    return int(match.group(1)) if match else None


def parse_alert_number(value: object) -> int | None:
    """A button's or menu's alert id: ASCII digits only (no sign, space or other digits)."""
    text = str(value)
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        return None
    return int(text)
