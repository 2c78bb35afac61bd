"""Triage rules over plain data: allowed transitions, who may resolve, snooze arguments, nudges.

Nothing here reads a clock or a database; the store applies what these functions decide.
See ``TRIAGE.md`` beside this file for the rules in prose.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from bot.domain.durations import format_duration, parse_duration
from bot.domain.paging import escalation_mentions, reminds
from bot.domain.route import Route

SnoozeKind = Literal["duration", "green", "sha"]
RefusalCode = Literal["not_found", "resolved", "already_acked", "not_acked", "already_assigned",
                      "not_snoozed", "bisecting"]

SNOOZE_USAGE = "2h|30m|1d|green|until SHA"
MAX_SNOOZE = timedelta(days=14)
# a commit may never get results for the alert's jobs (periodic jobs skip commits)
SHA_SNOOZE_CAP = timedelta(days=1)
_SHA = re.compile(r"^[0-9a-f]{7,40}$")
_PRIORITY = re.compile(r"^P(\d)$")


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageState:
    """The triage columns of one alert; field names are the ``alerts`` column names.

    ``reminders_from`` restarts the reminder clock (None: ``opened_at``);
    ``last_reminder_at`` is the last nudge of any kind (reminder or escalation).
    """

    id: int
    route: str
    priority: str
    resolved: bool
    opened_at: datetime
    acked_by: str | None = None
    acked_at: datetime | None = None
    assignee: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    snoozed_until: datetime | None = None
    snooze_kind: SnoozeKind | None = None
    snooze_sha: str | None = None
    snoozed_by: str | None = None
    reminders_from: datetime | None = None
    reminders_sent: int = 0
    last_reminder_at: datetime | None = None
    escalated: bool = False
    escalated_at: datetime | None = None
    bisect_status: str | None = None

    @property
    def snoozed(self) -> bool:
        return self.snooze_kind is not None or self.snoozed_until is not None

    @property
    def owned(self) -> bool:
        """Someone is on it: acknowledged, assigned or bisecting. Owned alerts get no reminders."""
        return bool(self.acked_by or self.assignee or self.bisect_status)

    @property
    def quiet_since(self) -> datetime:
        return self.reminders_from or self.opened_at


# the columns a transition may change, in the order the store writes them
MUTABLE_FIELDS = (
    "acked_by", "acked_at", "assignee", "assigned_by", "assigned_at", "snoozed_until",
    "snooze_kind", "snooze_sha", "snoozed_by", "reminders_from", "reminders_sent",
    "last_reminder_at", "escalated", "escalated_at", "bisect_status",
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an action did not happen; ``by``/``at``/``detail`` name the state that stopped it."""

    code: RefusalCode
    by: str | None = None
    at: datetime | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What to tell the person who acted (mrkdwn); ``code`` names a refusal's cause.

    Every front door (button, slash command) and every desk behind it (triage, bisects)
    answers with this, so a refusal is an answer, never an exception.
    """

    ok: bool
    text: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    """The alert's triage state after an action, and the timeline event that records it."""

    after: TriageState
    event: str
    actor: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SnoozeSpec:
    """What a snooze waits for: a duration, green jobs, or results at a commit."""

    kind: SnoozeKind
    duration: timedelta | None = None
    sha: str | None = None


# ------------------------------------------------------------------- arguments


def parse_snooze(words: Sequence[str]) -> SnoozeSpec:
    """``["2h"]``, ``["green"]`` or ``["until", "abc1234"]``; ValueError says what is wrong.

    Durations use ``parse_duration`` (``30m``, ``2h``, ``1d``, ``1h30m``) and are capped
    at two weeks: a longer snooze is a silenced alert nobody remembers.
    """
    if not words:
        raise ValueError(f"say how long to snooze: {SNOOZE_USAGE}")
    first = words[0].lower()
    if first == "until":
        if len(words) != 2:
            raise ValueError("`until` takes one commit sha, e.g. `until 1a2b3c4`")
        target = words[1].lower()
        if target == "green":
            return SnoozeSpec("green")
        if not _SHA.match(target):
            raise ValueError(f"{words[1]!r} is not a commit sha (7 to 40 hex characters)")
        return SnoozeSpec("sha", sha=target)
    if len(words) != 1:
        raise ValueError(f"expected one of {SNOOZE_USAGE}, got {' '.join(words)!r}")
    if first == "green":
        return SnoozeSpec("green")
    delta = parse_duration(first)
    if delta > MAX_SNOOZE:
        raise ValueError(f"{words[0]!r} is longer than the longest snooze "
                         f"({format_duration(MAX_SNOOZE)})")
    return SnoozeSpec("duration", duration=delta)


def may_act(user: str, allowed: Collection[str],
            group_members: Mapping[str, Collection[str]]) -> bool:
    """Whether ``user`` may resolve or bisect: everyone when ``allowed`` is empty, else
    listed users and members of listed user groups (``S...``, already expanded)."""
    if not allowed or user in allowed:
        return True
    return any(user in group_members.get(group, ()) for group in allowed
               if group.startswith("S"))


def raised_priority(priority: str) -> str:
    """One step more urgent: P2 -> P1; P0 stays P0; unknown labels stay as they are."""
    match = _PRIORITY.match(priority)
    return f"P{max(0, int(match.group(1)) - 1)}" if match else priority


# ------------------------------------------------------------------- transitions


def acknowledge(s: TriageState, actor: str, now: datetime) -> Transition | Refusal:
    if s.resolved:
        return Refusal("resolved")
    if s.acked_by:
        return Refusal("already_acked", by=s.acked_by, at=s.acked_at)
    return Transition(replace(s, acked_by=actor, acked_at=now), "acknowledged", actor)


def unacknowledge(s: TriageState, actor: str, now: datetime) -> Transition | Refusal:
    """Withdrawing an acknowledgement makes the alert unowned again: reminders restart."""
    if s.resolved:
        return Refusal("resolved")
    if not s.acked_by:
        return Refusal("not_acked")
    after = _restart_reminders(replace(s, acked_by=None, acked_at=None), now)
    return Transition(after, "unacknowledged", actor)


def assign(s: TriageState, actor: str, assignee: str, now: datetime,
           assignee_name: str | None = None) -> Transition | Refusal:
    if s.resolved:
        return Refusal("resolved")
    if s.assignee == assignee:
        return Refusal("already_assigned", by=s.assigned_by, at=s.assigned_at, detail=assignee)
    data: dict[str, Any] = {"assignee": assignee}
    if assignee_name:
        data["assignee_name"] = assignee_name
    after = replace(s, assignee=assignee, assigned_by=actor, assigned_at=now)
    return Transition(after, "assigned", actor, data)


def snooze(s: TriageState, actor: str, spec: SnoozeSpec, now: datetime) -> Transition | Refusal:
    """Snoozing a snoozed alert replaces its snooze: the newest decision wins."""
    if s.resolved:
        return Refusal("resolved")
    until: datetime | None = None
    if spec.kind == "duration":
        assert spec.duration is not None
        until = now + spec.duration
        shown = until.isoformat()
    elif spec.kind == "sha":
        until = now + SHA_SNOOZE_CAP
        shown = spec.sha or ""
    else:
        shown = "green"
    after = replace(s, snoozed_until=until, snooze_kind=spec.kind,
                    snooze_sha=spec.sha if spec.kind == "sha" else None, snoozed_by=actor)
    return Transition(after, "snoozed", actor, {"until": shown})


def unsnooze(s: TriageState, actor: str, now: datetime) -> Transition | Refusal:
    if s.resolved:
        return Refusal("resolved")
    if not s.snoozed:
        return Refusal("not_snoozed")
    return Transition(_end_snooze(s, now), "unsnoozed", actor)


def bisect_refusal(s: TriageState) -> Refusal | None:
    """A bisect needs an open alert with no bisect already running."""
    if s.resolved:
        return Refusal("resolved")
    if s.bisect_status:
        return Refusal("bisecting", detail=s.bisect_status)
    return None


def wake(s: TriageState, key: str, now: datetime) -> Transition | None:
    """A new job broke in a snoozed alert: the snooze ends, with the job as the reason."""
    if s.resolved or not s.snoozed:
        return None
    return Transition(_end_snooze(s, now), "woke", None, {"key": key})


def _end_snooze(s: TriageState, now: datetime) -> TriageState:
    cleared = replace(s, snoozed_until=None, snooze_kind=None, snooze_sha=None, snoozed_by=None)
    return _restart_reminders(cleared, now)


def _restart_reminders(s: TriageState, now: datetime) -> TriageState:
    return replace(s, reminders_from=now, reminders_sent=0, last_reminder_at=None)


# ------------------------------------------------------------------- nudges


@dataclass(frozen=True, slots=True)
class Reminder:
    n: int  # 1 for the first reminder
    mentions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Escalation:
    mentions: tuple[str, ...]
    priority: str  # the priority shown from now on


@dataclass(frozen=True, slots=True)
class SnoozeExpiry:
    sha: str | None = None  # the commit whose results ended a "until SHA" snooze


Nudge = Reminder | Escalation | SnoozeExpiry


def due_nudges(s: TriageState, route: Route, now: datetime,
               sha_has_results: bool = False) -> list[Nudge]:
    """What is due for one alert at ``now``, from its stored state only; at most one nudge.

    Input: the alert's triage state, its route's policy, and whether the commit a
    "until SHA" snooze waits for has results. Rules, in order:

    - resolved: nothing.
    - snoozed: the snooze expires when ``snoozed_until`` passed or the awaited commit
      has results; otherwise nothing (snoozed alerts are not nagged).
    - owned (acknowledged, assigned, bisecting): nothing.
    - the route's notify policy for the alert's priority (``bot.domain.paging``) decides
      whom escalation mentions and whether reminders are sent at all.
    - escalation, once, when ``escalate_after`` passed since the alert went quiet
      (opened, or last returned from a snooze or acknowledgement): mentions
      ``escalate_to`` (else the on-call) and the priority shown rises one step.
    - reminder ``n`` (up to ``remind_limit``) at ``quiet_since + remind_after +
      (n-1) * remind_every``, and never sooner than ``remind_every`` after the last
      nudge, so a bot that was down sends one reminder, not a burst.

    Because every input is stored and every nudge advances a stored counter, running
    this twice for the same state (a restart, a second process) cannot send twice.
    """
    if s.resolved:
        return []
    if s.snoozed:
        expired = s.snoozed_until is not None and now >= s.snoozed_until
        if s.snooze_kind == "sha" and sha_has_results:
            return [SnoozeExpiry(sha=s.snooze_sha)]
        return [SnoozeExpiry()] if expired else []
    if s.owned:
        return []
    since = s.quiet_since
    if not s.escalated and now >= since + route.escalate_after:
        return [Escalation(escalation_mentions(route, s.priority), raised_priority(s.priority))]
    if s.reminders_sent >= route.remind_limit or not reminds(route, s.priority):
        return []
    due = since + route.remind_after + route.remind_every * s.reminders_sent
    if s.last_reminder_at is not None:
        due = max(due, s.last_reminder_at + route.remind_every)
    if now >= due:
        return [Reminder(s.reminders_sent + 1, route.oncall or route.owners)]
    return []


def nudge_transition(s: TriageState, nudge: Nudge, now: datetime) -> Transition:
    """The state after a nudge is sent and the event whose thread reply carries it."""
    age_s = int((now - s.opened_at).total_seconds())
    match nudge:
        case Reminder(n=n, mentions=mentions):
            return Transition(replace(s, reminders_sent=n, last_reminder_at=now), "reminder",
                              None, {"mentions": list(mentions), "n": n, "age_s": age_s})
        case Escalation(mentions=mentions, priority=priority):
            after = replace(s, escalated=True, escalated_at=now, last_reminder_at=now)
            return Transition(after, "escalated", None,
                              {"mentions": list(mentions), "priority": priority, "age_s": age_s})
        case SnoozeExpiry(sha=sha):
            data = {"sha": sha} if sha else {}
            return Transition(_end_snooze(s, now), "snooze_expired", None, data)
    raise AssertionError(f"unknown nudge {nudge!r}")
