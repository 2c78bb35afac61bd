"""External (Grafana) alerts: one row per fingerprint, each attached to one incident in ``alerts``.

A Grafana alert joins the bot's own open streak alert for the same team, so one
breakage is one incident and one Slack thread; with none open it gets a
``kind = 'grafana'`` incident of its own, resolved when its last Grafana alert resolves.
A streak alert that opens later while such a standalone incident is open stays a
separate incident (they are not merged after the fact).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from bot.domain.grafana import GrafanaAlert
from bot.domain.route import Route
from bot.store import alerts as alert_store
from bot.store.codec import from_iso, to_iso

SOURCE = "grafana"


@dataclass(frozen=True, slots=True)
class GrafanaOutcome:
    """What one alert of a notification did: created, fired, updated, resolved, stale, ..."""

    fingerprint: str
    action: str
    incident: int | None


@dataclass
class ExternalReport:
    outcomes: list[GrafanaOutcome] = field(default_factory=list)
    incidents: set[int] = field(default_factory=set)  # alerts whose Slack message must change


@dataclass(frozen=True, slots=True)
class _Stored:
    id: int
    alert_id: int | None
    status: str
    title: str
    priority: str | None
    reason: str
    values_json: str
    links: str
    starts_at: datetime | None
    ends_at: datetime | None


def _stored(db: sqlite_utils.Database, fingerprint: str) -> _Stored | None:
    row = db.execute(
        "SELECT id, alert_id, status, title, priority, reason, values_json, links, starts_at, "
        "ends_at FROM external_alerts WHERE source = ? AND fingerprint = ?",
        [SOURCE, fingerprint]).fetchone()
    if row is None:
        return None
    return _Stored(*row[:8], from_iso(row[8]), from_iso(row[9]))  # type: ignore[arg-type]


def apply_notification(db: sqlite_utils.Database, alerts: Sequence[GrafanaAlert],
                       routes: Sequence[Route], now: datetime) -> ExternalReport:
    """Record every alert of one Grafana notification inside the caller's transaction."""
    report = ExternalReport()
    for alert in alerts:
        outcome = _apply(db, alert, routes, now)
        report.outcomes.append(outcome)
        if outcome.incident is not None and outcome.action not in ("stale", "duplicate"):
            report.incidents.add(outcome.incident)
    return report


def _is_stale(alert: GrafanaAlert, old: _Stored) -> bool:
    """Older than what is stored: a late delivery of an earlier episode or state.

    An episode is identified by ``startsAt``; a resolution by its ``endsAt``. A firing
    notification for an episode that started before the stored one, or no later than
    the stored resolution, is stale; so is a resolution older than the stored episode.
    """
    if alert.status == "firing":
        if alert.starts_at is None:
            return False
        if old.starts_at is not None and alert.starts_at < old.starts_at:
            return True
        return (old.status == "resolved" and old.ends_at is not None
                and alert.starts_at <= old.ends_at)
    # resolved
    if old.starts_at is not None and alert.starts_at is not None \
            and alert.starts_at < old.starts_at:
        return True
    return (old.status == "resolved" and old.ends_at is not None and alert.ends_at is not None
            and alert.ends_at < old.ends_at)


def _content(alert: GrafanaAlert) -> tuple[str, str | None, str, str, str]:
    return (alert.title, alert.priority, alert.reason,
            json.dumps(alert.values, sort_keys=True, default=str),
            json.dumps(alert.links, sort_keys=True))


def _apply(db: sqlite_utils.Database, alert: GrafanaAlert, routes: Sequence[Route],
           now: datetime) -> GrafanaOutcome:
    old = _stored(db, alert.fingerprint)
    if old is None:
        if alert.status == "resolved":
            # never seen firing: keep the record, but open no incident just to close it
            _insert(db, alert, None, now)
            return GrafanaOutcome(alert.fingerprint, "resolved_unseen", None)
        incident = _incident_for(db, alert, routes, now)
        _insert(db, alert, incident, now)
        _fired(db, incident, alert, now)
        return GrafanaOutcome(alert.fingerprint, "created", incident)
    if _is_stale(alert, old):
        _touch(db, old.id, now)
        return GrafanaOutcome(alert.fingerprint, "stale", old.alert_id)
    same_content = _content(alert) == (old.title, old.priority, old.reason, old.values_json,
                                       old.links)
    if alert.status == "resolved":
        if old.status == "resolved":
            if same_content and alert.ends_at == old.ends_at:
                _touch(db, old.id, now)
                return GrafanaOutcome(alert.fingerprint, "duplicate", old.alert_id)
            _update(db, old.id, alert, old.alert_id, now)
            if old.alert_id is not None:
                alert_store.bump_version(db, old.alert_id)
            return GrafanaOutcome(alert.fingerprint, "updated", old.alert_id)
        _update(db, old.id, alert, old.alert_id, now)
        if old.alert_id is not None:
            _resolved(db, old.alert_id, alert, now)
        return GrafanaOutcome(alert.fingerprint, "resolved", old.alert_id)
    if old.status == "firing" and alert.starts_at == old.starts_at:
        # the same episode repeated. If someone closed its incident in Slack meanwhile,
        # Grafana's repeat notifications must not reopen it every repeat interval.
        if same_content:
            _touch(db, old.id, now)
            return GrafanaOutcome(alert.fingerprint, "duplicate", old.alert_id)
        _update(db, old.id, alert, old.alert_id, now)
        if old.alert_id is not None:
            alert_store.bump_version(db, old.alert_id)  # the parent shows the new reason
        return GrafanaOutcome(alert.fingerprint, "updated", old.alert_id)
    # a new episode: fires again after resolving
    incident = (old.alert_id if old.alert_id is not None and _is_open(db, old.alert_id)
                else _incident_for(db, alert, routes, now))
    _update(db, old.id, alert, incident, now)
    _fired(db, incident, alert, now)
    return GrafanaOutcome(alert.fingerprint, "refired", incident)


def _is_open(db: sqlite_utils.Database, alert_id: int) -> bool:
    row = db.execute("SELECT state FROM alerts WHERE id = ?", [alert_id]).fetchone()
    return row is not None and row[0] != "resolved"


def _route_for(alert: GrafanaAlert, routes: Sequence[Route]) -> Route:
    for route in routes:
        if route.team in alert.team:
            return route
    return routes[0] if routes else Route()


def _incident_for(db: sqlite_utils.Database, alert: GrafanaAlert, routes: Sequence[Route],
                  now: datetime) -> int:
    """The oldest open streak alert of a matching team, else a new Grafana incident."""
    teams = list(alert.team) or [_route_for(alert, routes).team]
    marks = ",".join("?" * len(teams))
    row = db.execute(
        f"SELECT id FROM alerts WHERE kind = 'streak' AND state != 'resolved' "
        f"AND team IN ({marks}) ORDER BY id LIMIT 1", teams).fetchone()
    if row is not None:
        return int(row[0])
    route = _route_for(alert, routes)
    cursor = db.execute(
        "INSERT INTO alerts (route, repo, branch, team, priority, kind, title, opened_at) "
        "VALUES (?, ?, ?, ?, ?, 'grafana', ?, ?)",
        [route.name, route.repo, route.branch, alert.team[0] if alert.team else route.team,
         alert.priority or route.priority, alert.title or None, to_iso(now)],
    )
    return int(cursor.lastrowid or 0)


def _insert(db: sqlite_utils.Database, alert: GrafanaAlert, incident: int | None,
            now: datetime) -> None:
    title, priority, reason, values_json, links = _content(alert)
    db.execute(
        "INSERT INTO external_alerts (source, fingerprint, alert_id, title, status, team, "
        "priority, reason, values_json, links, starts_at, ends_at, updated_at, "
        "last_notification_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [SOURCE, alert.fingerprint, incident, title, alert.status, ",".join(alert.team) or None,
         priority, reason, values_json, links, to_iso(alert.starts_at), to_iso(alert.ends_at),
         to_iso(now), to_iso(now)],
    )


def _update(db: sqlite_utils.Database, row_id: int, alert: GrafanaAlert, incident: int | None,
            now: datetime) -> None:
    title, priority, reason, values_json, links = _content(alert)
    db.execute(
        "UPDATE external_alerts SET alert_id = ?, title = ?, status = ?, team = ?, priority = ?, "
        "reason = ?, values_json = ?, links = ?, starts_at = ?, ends_at = ?, updated_at = ?, "
        "last_notification_at = ? WHERE id = ?",
        [incident, title, alert.status, ",".join(alert.team) or None, priority, reason,
         values_json, links, to_iso(alert.starts_at), to_iso(alert.ends_at), to_iso(now),
         to_iso(now), row_id],
    )


def _touch(db: sqlite_utils.Database, row_id: int, now: datetime) -> None:
    db.execute("UPDATE external_alerts SET last_notification_at = ? WHERE id = ?",
               [to_iso(now), row_id])


def _fired(db: sqlite_utils.Database, incident: int, alert: GrafanaAlert, now: datetime) -> None:
    alert_store.add_event(db, incident, "grafana_firing", now, title=alert.title,
                          reason=alert.reason)


def _resolved(db: sqlite_utils.Database, incident: int, alert: GrafanaAlert,
              now: datetime) -> None:
    alert_store.add_event(db, incident, "grafana_resolved", now, title=alert.title)
    row = db.execute("SELECT kind FROM alerts WHERE id = ?", [incident]).fetchone()
    if row is None or row[0] != "grafana":
        return  # a streak incident resolves by its own rule: a newer green commit
    still_firing = db.execute(
        "SELECT count(*) FROM external_alerts WHERE alert_id = ? AND status = 'firing'",
        [incident]).fetchone()[0]
    if not still_firing:
        alert_store.resolve(db, incident, now, reason="resolved in Grafana")


@dataclass(frozen=True, slots=True)
class ExternalAlert:
    """One Grafana alert of an incident as stored: what the alert message shows of it."""

    title: str
    status: str
    priority: str | None
    team: str | None
    reason: str
    links: dict[str, str]
    starts_at: datetime | None
    source: str


def of_incident(db: sqlite_utils.Database, alert_id: int) -> list[ExternalAlert]:
    """The external alerts attached to one incident, oldest first."""
    return [
        ExternalAlert(title=r["title"], status=r["status"], priority=r["priority"],
                      team=r["team"], reason=r["reason"], links=json.loads(r["links"] or "{}"),
                      starts_at=from_iso(r["starts_at"]), source=r["source"])
        for r in db.query("SELECT * FROM external_alerts WHERE alert_id = ? ORDER BY id",
                          [alert_id])
    ]
