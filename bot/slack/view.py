"""The plain data the Slack renderer draws from: one alert, its jobs, commits and thread events.

Keyword-only (two shas cannot be swapped silently); datetimes are UTC, naive ones read as UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

AlertState = Literal["open", "acknowledged", "assigned", "snoozed", "bisecting", "resolved"]

EventKind = Literal[
    "opened",
    "extended",
    "job_joined",
    "job_recovered",
    "job_withdrawn",
    "job_moved",
    "acknowledged",
    "unacknowledged",
    "assigned",
    "snoozed",
    "unsnoozed",
    "snooze_expired",
    "woke",
    "resolved",
    "reopened",
    "follows",
    "reminder",
    "escalated",
    "bisect_started",
    "bisect_round",
    "bisect_found",
    "bisect_failed",
    "bisect_cancelled",
    "grafana_firing",
    "grafana_resolved",
    "retry_requested",
    "retry_result",
    "job_infra",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitView:
    """A trunk commit as shown in a regression range; title and author are raw CI text."""

    sha: str
    title: str = ""
    author: str = ""
    pr_number: int | None = None
    url: str | None = None  # unused by the renderer: links are built from AlertView.github_url
    time: datetime | None = None
    reasons: tuple[str, ...] = ()  # why it ranks where it does (EVIDENCE.md), strongest first
    score: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class FailedRunView:
    """One failed run (a shard) at its job's newest failing commit, with what its log said.

    ``state``: ``done`` (``line`` and ``kind`` known), ``wanted`` (log not read yet),
    ``gone`` (GitHub no longer has the log), ``failed`` (could not be read), ``none``.
    ``kind``: ``infra`` | ``build`` | ``test`` | ``unknown``; ``cause`` names the infra rule.
    """

    key: str
    job_name: str
    url: str | None = None
    state: str = "none"
    line: str | None = None
    kind: str | None = None
    cause: str | None = None
    signature: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryView:
    """A rerun asked for one job: who asked, where it stands, what it said.

    ``state``: planned | uncertain | requested | done | refused | lost; ``outcome`` (done):
    passed | failed | cancelled; ``detail``: GitHub's reason for a refusal.
    """

    job_name: str
    requested_by: str
    state: str
    outcome: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class JobView:
    """One failing job key of an alert.

    ``streak``: consecutive failing commits (0 or more once recovered).
    ``log_url`` is preferred over ``html_url`` for the "log" link of the newest failure.
    ``failure_line``: the first failure line of the newest failing run, raw.
    ``flaky``: a shard failed and passed at one commit of the streak, its last green or the
    pass that ended it (evidence of flakiness); ``flaky_sha`` is the newest such commit and
    ``flaky_url`` the failed run there.
    ``recovered``: the job passed on a newer commit; shown struck through.
    """

    key: str
    streak: int
    newest_failing_sha: str
    first_failing_sha: str
    log_url: str | None = None
    html_url: str | None = None
    failure_line: str | None = None
    flaky: bool = False
    flaky_sha: str | None = None
    flaky_url: str | None = None
    recovered: bool = False
    # flaky or real (EVIDENCE.md section 4): real | flaky | infra | unclear, and why
    verdict: str | None = None
    evidence: tuple[str, ...] = ()
    against: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalAlertView:
    """An alert from another system (Grafana) attached to this incident.

    ``reason`` is the rule's value string, e.g.
    ``Failure_Threshold=1, Number_of_Jobs_Failing=1``. ``links`` keys: ``generator``
    (the Grafana alert), ``dashboard``, ``panel``, ``silence``, ``runbook``.
    """

    title: str
    status: str  # firing | resolved
    priority: str | None = None
    team: str | None = None
    reason: str | None = None
    links: Mapping[str, str] = field(default_factory=dict)
    occurred_at: datetime | None = None
    source: str = "grafana"


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertView:
    """Everything the alert's parent message shows.

    ``route``: the workflow family the alert belongs to ("inductor"); shown capitalised.
    ``team``: the owning team label ("broken-inductor").
    ``title``: only for alerts without jobs (Grafana-only); job alerts derive theirs.
    ``acked_by``/``assignee``/``resolved_by``: Slack user ids.
    ``snooze_reason``: display text such as "until green" or "until abc1234".
    ``bisect_status``: display text such as "round 2, 16 -> 4 suspects".
    ``suspects``: commits in (last green, first red], oldest first; possibly only the
    first few hundred of a long range, with ``suspect_count`` the exact total. With
    ``ranked``, most likely first instead, each with its ``reasons``.
    ``failed_runs``: the failed runs of the failing jobs at their newest failing commit.
    ``links``: label -> URL, e.g. {"HUD": ..., "Grafana dashboard": ..., "Runbook": ...}.
    ``escalated``: shown one priority step higher than ``priority``.
    """

    id: int
    short_id: str
    repo: str  # "pytorch/pytorch"
    branch: str
    route: str
    team: str
    priority: str  # "P0" (most urgent) .. "P3"
    state: AlertState
    opened_at: datetime
    title: str | None = None
    acked_by: str | None = None
    assignee: str | None = None
    snoozed_until: datetime | None = None
    snooze_reason: str | None = None
    bisect_status: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    resolved_at_sha: str | None = None
    jobs: tuple[JobView, ...] = ()
    last_green: CommitView | None = None
    first_red: CommitView | None = None
    suspects: tuple[CommitView, ...] = ()
    suspect_count: int | None = None  # None: len(suspects) is the whole range
    ranked: bool = False
    failed_runs: tuple[FailedRunView, ...] = ()
    retries: tuple[RetryView, ...] = ()  # reruns asked from Slack, oldest first
    external: tuple[ExternalAlertView, ...] = ()
    links: Mapping[str, str] = field(default_factory=dict)
    escalated: bool = False
    github_url: str = "https://github.com"
    oncall: tuple[str, ...] = ()  # the route's on-call users / user groups (Slack ids)
    owners: tuple[str, ...] = ()
    # Slack id -> display name: given, people are shown by name (no ping, for the channel
    # message, whose first post would otherwise notify them); missing: as <@U…> mentions
    names: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventView:
    """One thing that happened to an alert, posted as a quiet thread reply.

    ``actor``: the Slack user who did it, None for the bot itself. ``actor_name`` is
    their display name if known: replies name people without ``<@U…>`` so that
    routine updates notify nobody. ``data`` by kind (all keys optional unless noted):

    - opened: {"jobs": int}
    - extended: {"jobs": [{"key": str, "streak": int}, ...]}
    - job_joined / job_recovered: {"key": str, "sha": str}
    - opened: {"mentions": [...]} when the route pages its on-call (added by the sender)
    - assigned: {"assignee": user id (mentioned: they must hear), "assignee_name": str}
    - snoozed: {"until": ISO datetime | "green" | sha}
    - woke: {"key": str} (the job whose failure ended the snooze)
    - resolved: {"sha": str, "duration_s": float, "reason": str}
    - reopened: {"key": str, "sha": str, "reason": str, "mentions": [who resolved it]}
    - follows: {"previous": alert id, "previous_short": "A3", "url": its thread (sender)}
    - reminder: {"mentions": ["U1", "S2"], "age_s": float}
    - escalated: {"mentions": [...], "priority": "P1", "age_s": float}
    - bisect_started: {"suspects": int, "runs_per_round": int, "key": str,
      "likeliest": sha (the top-ranked suspect), "guided": bool (its first round brackets it)}
    - bisect_round: {"round": int, "before": int, "after": int,
      "probes": [{"sha": str, "outcome": "pass"|"fail"|"inconclusive", "url": str,
      "detail": str}, ...]}
    - bisect_found: {"sha": str, "title": str, "confirmed": bool, "author": str,
      "author_slack": user id (mentioned), "pr": int, "revert": str (the next step)}
    - bisect_failed: {"reason": str, "candidates": [sha, ...], "candidate_count": int}
    - bisect_cancelled: {"reason": str}
    - grafana_firing / grafana_resolved: {"title": str, "reason": str}
    - job_infra: {"key": str, "cause": str} (the job left: its failures were infrastructure)
    - retry_requested: {"jobs": [job name, ...], "sha": str, "already": int}
    - retry_result: {"results": [{"job": job name, "outcome": "passed"|"failed"|
      "cancelled"|"lost"}, ...]}
    """

    kind: EventKind
    actor: str | None
    at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    actor_name: str | None = None
