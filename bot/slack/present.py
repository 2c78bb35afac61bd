"""Turning what the store knows about an alert into the plain views the renderer draws."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import sqlite_utils

from bot.domain.alert_ids import short_id
from bot.domain.hud_filter import REGEX_FLAG, name_filter
from bot.domain.route import Route
from bot.domain.suspects import sets_apart
from bot.slack.view import (
    AlertView,
    CommitView,
    EventView,
    ExternalAlertView,
    FailedRunView,
    JobView,
    RetryView,
)
from bot.store import external
from bot.store import retries as retry_store
from bot.store.alert_evidence import AlertFacts, JobFacts, RunFacts, alert_evidence
from bot.store.alerts import AlertEvent
from bot.store.codec import from_iso
from bot.store.details import AlertDetail, JobDetail, alert_detail
from bot.store.history import PlacedCommit

STATES = ("open", "acknowledged", "assigned", "snoozed", "bisecting", "resolved")


def commit_view(c: PlacedCommit | None) -> CommitView | None:
    if c is None:
        return None
    return CommitView(sha=c.sha, title=c.title, author=c.author, pr_number=c.pr_number,
                      url=c.url, time=c.time)


def hud_link(route: Route, detail: AlertDetail) -> str | None:
    """HUD filtered to exactly the alert's failing jobs (all of them once every one recovered).

    The filter is an anchored regular expression (``bot.domain.hud_filter``); HUD reads
    it as one only with ``useRegexFilter=true``, added when the template lacks it.
    """
    if not route.hud_url:
        return None
    keys = [j.key for j in detail.jobs if not j.recovered] or [j.key for j in detail.jobs]
    job_filter = quote(name_filter(keys), safe="")
    try:
        url = route.hud_url.format(repo=detail.repo, branch=detail.branch,
                                   job_filter=job_filter)
    except (KeyError, IndexError, ValueError):
        return route.hud_url
    if "{job_filter}" in route.hud_url and REGEX_FLAG not in url:
        url += ("&" if "?" in url else "?") + REGEX_FLAG
    return url


def build_alert_view(db: sqlite_utils.Database, alert_id: int,
                     routes: Mapping[str, Route]) -> AlertView | None:
    detail = alert_detail(db, alert_id)
    if detail is None:
        return None
    row = detail.row
    route = routes.get(detail.route) or Route(name=detail.route)
    links: dict[str, str] = {}
    if detail.kind == "streak" and (hud := hud_link(route, detail)):
        links["HUD"] = hud
    if route.grafana_url:
        links["Grafana dashboard"] = route.grafana_url
    if route.runbook_url:
        links["Runbook"] = route.runbook_url
    state = _state(row)
    facts = alert_evidence(db, detail, code_area=route.code_area,
                           flaky_tests=route.flaky_tests)
    return AlertView(
        id=detail.id,
        short_id=short_id(detail.id),
        repo=detail.repo,
        branch=detail.branch,
        route=detail.route,
        team=detail.team,
        priority=detail.priority,
        state=state,  # type: ignore[arg-type]
        opened_at=detail.opened_at,
        title=detail.title,
        acked_by=row.get("acked_by"),
        assignee=row.get("assignee"),
        snoozed_until=from_iso(row.get("snoozed_until")),
        snooze_reason=_snooze_reason(row),
        bisect_status=row.get("bisect_status"),
        resolved_at=detail.resolved_at,
        resolved_by=detail.resolved_by,
        resolved_at_sha=detail.resolved_sha,
        jobs=tuple(_job_view(j, facts.jobs.get(j.key)) for j in detail.jobs),
        last_green=commit_view(detail.last_green),
        first_red=commit_view(detail.first_red),
        suspects=_suspects(detail, facts),
        suspect_count=detail.suspect_count,
        ranked=sets_apart(facts.ranking),
        failed_runs=tuple(_run_view(r) for r in facts.runs),
        retries=tuple(RetryView(job_name=r.job_name, requested_by=r.requested_by,
                                state=r.state, outcome=r.outcome, detail=r.detail)
                      for r in retry_store.of_alert(db, alert_id)),
        external=tuple(_external(db, alert_id)),
        links=links,
        escalated=bool(row.get("escalated")),
        oncall=route.oncall,
        owners=route.owners,
    )


def _job_view(j: JobDetail, facts: JobFacts | None) -> JobView:
    judgement = facts.judgement if facts is not None else None
    return JobView(key=j.key, streak=j.streak, newest_failing_sha=j.newest_failing_sha,
                   first_failing_sha=j.first_failing_sha, log_url=j.log_url,
                   html_url=j.html_url,
                   failure_line=(facts.headline if facts is not None else None) or j.failure_line,
                   flaky=j.flaky, flaky_sha=j.flaky_sha, flaky_url=j.flaky_url,
                   recovered=j.recovered,
                   verdict=judgement.verdict.value if judgement is not None else None,
                   evidence=judgement.evidence if judgement is not None else (),
                   against=judgement.against if judgement is not None else ())


def _run_view(r: RunFacts) -> FailedRunView:
    c = r.classification
    return FailedRunView(key=r.key, job_name=r.job_name, url=r.html_url, state=r.state,
                         line=r.headline, kind=c.kind.value if c is not None else None,
                         cause=c.rule if c is not None and c.infra else None,
                         signature=r.signature)


def _suspects(detail: AlertDetail, facts: AlertFacts) -> tuple[CommitView, ...]:
    """The range's commits: most likely first when the evidence sets one apart (with the
    reasons of every suspect that has some), else oldest first."""
    plain = [v for c in detail.suspects if (v := commit_view(c)) is not None]
    if not sets_apart(facts.ranking):
        return tuple(plain)
    by_sha = {v.sha: v for v in plain}
    return tuple(replace(by_sha[s.sha], reasons=s.reasons if s.score > 0 else (),
                         score=s.score)
                 for s in facts.ranking if s.sha in by_sha)


def _state(row: Mapping[str, Any]) -> str:
    if row["state"] == "resolved":
        return "resolved"
    if row.get("bisect_status"):
        return "bisecting"
    if row.get("snoozed_until") or row.get("snooze_kind") in ("green", "sha"):
        return "snoozed"
    if row.get("assignee"):
        return "assigned"
    if row.get("acked_by"):
        return "acknowledged"
    return "open"


def _snooze_reason(row: Mapping[str, Any]) -> str | None:
    kind = row.get("snooze_kind")
    if kind == "green":
        return "until green"
    if kind == "sha" and row.get("snooze_sha"):
        return f"until {row['snooze_sha'][:10]} has results"
    return None


def _external(db: sqlite_utils.Database, alert_id: int) -> list[ExternalAlertView]:
    return [ExternalAlertView(title=e.title, status=e.status, priority=e.priority, team=e.team,
                              reason=e.reason, links=e.links, occurred_at=e.starts_at,
                              source=e.source)
            for e in external.of_incident(db, alert_id)]


def event_view(event: AlertEvent) -> EventView:
    return EventView(kind=event.kind, actor=event.actor, at=event.at or datetime.min,  # type: ignore[arg-type]
                     data=event.data)
