"""Grafana alerts as plain data: what the webhook parser produces and the store records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class GrafanaAlert:
    """One alert of a notification, with the fields the bot shows and routes on."""

    fingerprint: str
    status: str  # firing | resolved
    title: str
    team: tuple[str, ...] = ()
    priority: str | None = None  # P0 (most urgent) .. P3
    reason: str = ""  # "Failure_Threshold=1, Number_of_Jobs_Failing=1"
    values: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # generator, dashboard, panel, ...
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # None while firing (Grafana sends year 1)
    summary: str = ""
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GrafanaNotification:
    """One webhook delivery: a group of alerts that Grafana notifies about together."""

    status: str  # firing | resolved: firing while any alert of the group fires
    group_key: str
    external_url: str | None
    alerts: tuple[GrafanaAlert, ...] = ()
    title: str = ""
    receiver: str = ""
