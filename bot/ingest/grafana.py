"""Grafana alerting webhook bodies as notifications: alerts, priority, reason and links."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.domain.grafana import GrafanaAlert, GrafanaNotification
from bot.domain.payload import (
    PayloadError,
    checked,
    field_of,
    optional_field,
    parse_timestamp,
)

ALERT_STATUSES = ("firing", "resolved")
PRIORITIES = ("P0", "P1", "P2", "P3")

# One "[ var='Name' labels={...} value=1 ]" entry of valueString (older Grafana: metric=).
_VALUE_ENTRY = re.compile(
    r"\[\s*(?:var|metric)=(?P<name>'[^']*'|\"[^\"]*\"|\S+)\s+labels=\{[^}]*\}\s+"
    r"value=(?P<value>[^\s\]]+)\s*\]"
)


def normalise_priority(value: Any) -> str | None:
    """``"P2"``, ``"p2"``, ``"2"`` and ``2`` all mean ``"P2"``; anything else is no priority.

    Unknown priorities become ``None`` rather than an error: a typo in an alert
    annotation must not drop the alert.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip().upper().removeprefix("P")
    else:
        return None
    candidate = f"P{text}"
    return candidate if candidate in PRIORITIES else None


def _format_value(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def reason_from_values(values: Mapping[str, Any]) -> str:
    """``{"A": 1, "B": 0.5}`` as ``"A=1, B=0.5"``, keeping Grafana's order."""
    return ", ".join(f"{name}={_format_value(value)}" for name, value in values.items())


def reason_from_value_string(value_string: str) -> str:
    """``"[ var='A' labels={} value=1 ], ..."`` as ``"A=1, ..."``, quotes stripped."""
    entries = []
    for match in _VALUE_ENTRY.finditer(value_string):
        name = match["name"].strip("'\"")
        entries.append(f"{name}={match['value']}")
    return ", ".join(entries)


def _str_dict(obj: Mapping[str, Any], key: str, path: str) -> dict[str, str]:
    raw = optional_field(obj, key, dict, path) or {}
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def _teams(annotations: Mapping[str, str], labels: Mapping[str, str]) -> tuple[str, ...]:
    raw = annotations.get("Teams") or labels.get("Teams") or ""
    return tuple(team.strip() for team in raw.split(",") if team.strip())


def _links(alert: Mapping[str, Any], annotations: Mapping[str, str], path: str) -> dict[str, str]:
    def url(key: str) -> str:
        return optional_field(alert, key, str, f"{path}.{key}") or ""

    candidates = {
        "generator": url("generatorURL"),
        "dashboard": url("dashboardURL") or url("panelURL"),
        "panel": url("panelURL"),
        "silence": url("silenceURL"),
        "runbook": annotations.get("runbook_url", ""),
    }
    return {name: link for name, link in candidates.items() if link}


def _alert(raw: Any, path: str) -> GrafanaAlert:
    alert = checked(raw, dict, path)
    status = field_of(alert, "status", str, f"{path}.status")
    if status not in ALERT_STATUSES:
        raise PayloadError(f"{path}.status: expected firing or resolved, got {status!r}")
    labels = _str_dict(alert, "labels", f"{path}.labels")
    annotations = _str_dict(alert, "annotations", f"{path}.annotations")
    values = dict(optional_field(alert, "values", dict, f"{path}.values") or {})
    value_string = optional_field(alert, "valueString", str, f"{path}.valueString") or ""
    priority = annotations.get("Priority") or labels.get("Priority")
    return GrafanaAlert(
        fingerprint=field_of(alert, "fingerprint", str, f"{path}.fingerprint"),
        status=status,
        title=labels.get("rulename") or labels.get("alertname") or "",
        team=_teams(annotations, labels),
        priority=normalise_priority(priority),
        reason=reason_from_values(values) if values else reason_from_value_string(value_string),
        values=values,
        links=_links(alert, annotations, path),
        starts_at=parse_timestamp(alert.get("startsAt"), f"{path}.startsAt"),
        ends_at=parse_timestamp(alert.get("endsAt"), f"{path}.endsAt"),
        summary=annotations.get("summary", ""),
        description=annotations.get("description", ""),
        labels=labels,
        annotations=annotations,
    )


def parse_grafana(payload: Any) -> GrafanaNotification:
    """A decoded Grafana webhook body as a notification; ``PayloadError`` if malformed."""
    payload = checked(payload, dict, "payload")
    status = field_of(payload, "status", str, "status")
    if status not in ALERT_STATUSES:
        raise PayloadError(f"status: expected firing or resolved, got {status!r}")
    alerts = field_of(payload, "alerts", list, "alerts")
    return GrafanaNotification(
        status=status,
        group_key=optional_field(payload, "groupKey", str, "groupKey") or "",
        external_url=optional_field(payload, "externalURL", str, "externalURL") or None,
        alerts=tuple(_alert(raw, f"alerts[{i}]") for i, raw in enumerate(alerts)),
        title=optional_field(payload, "title", str, "title") or "",
        receiver=optional_field(payload, "receiver", str, "receiver") or "",
    )
