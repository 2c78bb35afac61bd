"""Reading decoded JSON into domain data: the one parse error every parser raises, and its checks.

GitHub, HUD and Grafana payloads all go through these, so a malformed body is always a
``PayloadError`` naming the field by its path, whichever source sent it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

# what SQLite can store as an integer; a bigger number in a payload is nonsense, not data
MAX_INT = 2**63 - 1
# CI times outside these years are corrupt, and past them datetime arithmetic overflows
EARLIEST_YEAR = 1970
LATEST_YEAR = 2200
_SHA = re.compile(r"[0-9a-f]{40}")


class PayloadError(ValueError):
    """A payload is missing a field or has one of the wrong type.

    The message names the field by its path (``workflow_job.head_sha``) so a bad
    delivery can be diagnosed from the log line alone.
    """


def field_of(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str) -> Any:
    """``obj[key]``, which must exist and be of ``kind``; ``path`` names it in errors."""
    if key not in obj:
        raise PayloadError(f"{path}: missing")
    return checked(obj[key], kind, path)


def optional_field(
    obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: str
) -> Any:
    """``obj[key]`` if present and not null, else ``None``; present values must be ``kind``."""
    value = obj.get(key)
    return None if value is None else checked(value, kind, path)


def checked(value: Any, kind: type | tuple[type, ...], path: str) -> Any:
    """``value`` if it is a ``kind``. Booleans are not accepted as integers."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise PayloadError(f"{path}: expected {_kind_names(kinds)}, got bool")
    if not isinstance(value, kinds):
        raise PayloadError(f"{path}: expected {_kind_names(kinds)}, got {type(value).__name__}")
    if isinstance(value, int) and not -MAX_INT - 1 <= value <= MAX_INT:
        raise PayloadError(f"{path}: integer out of range")
    return value


def is_sha(text: object) -> bool:
    """A full commit id: exactly 40 lower-case hex digits (never a ref like ``HEAD~3``)."""
    return isinstance(text, str) and _SHA.fullmatch(text) is not None


def sha_field(obj: Mapping[str, Any], key: str, path: str) -> str:
    """``obj[key]`` as a full commit sha; upper-case hex is folded, anything else refused."""
    value = field_of(obj, key, str, path).strip().lower()
    if not is_sha(value):
        raise PayloadError(f"{path}: expected a 40-hex-digit commit sha, got {value[:50]!r}")
    return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    return " or ".join(kind.__name__ for kind in kinds)


def parse_timestamp(value: Any, path: str) -> datetime | None:
    """An aware datetime from an ISO 8601 string (``Z`` allowed), or ``None``.

    ``None``, ``""`` and Go's zero time ``0001-01-01T00:00:00Z`` (which GitHub and
    Grafana send for "not yet") all mean "no time". Naive times are taken as UTC,
    which is what every source here reports in.
    """
    if value is None or value == "":
        return None
    if type(value) is str and len(value) == 20 and value[19] == "Z" and value[10] == "T":
        try:  # GitHub's own shape, 2021-08-05T10:34:58Z: one call (3.11 reads the Z)
            quick = datetime.fromisoformat(value)
        except ValueError:
            pass  # the full path below says what is wrong
        else:
            if EARLIEST_YEAR <= quick.year < LATEST_YEAR:
                return quick
    if not isinstance(value, str):
        raise PayloadError(f"{path}: expected an ISO 8601 string, got {type(value).__name__}")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{path}: not an ISO 8601 timestamp: {value!r}") from None
    if parsed.year == 1:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:  # the zone is kept, but the time must be one UTC can hold
        in_utc = parsed.astimezone(UTC)
    except OverflowError:
        raise PayloadError(f"{path}: timestamp out of range: {value!r}") from None
    if not EARLIEST_YEAR <= in_utc.year < LATEST_YEAR:
        raise PayloadError(f"{path}: timestamp out of range ({EARLIEST_YEAR}..{LATEST_YEAR}): "
                           f"{value!r}")
    return parsed
