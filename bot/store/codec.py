"""How values are written to SQLite: timestamps as UTC ISO 8601 text, lists as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime


def to_iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def from_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def to_json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))


def from_json_list(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()
