"""The triage actions both front doors share: the alert's buttons and the slash command.

One method, ``Triage.perform``, checks who may act, applies the transition in the store,
wakes Slack delivery (the parent is edited, the thread gets a reply) and words the
answer for the person who asked. Refusals are answers too, never exceptions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, Protocol

from bot.domain import triage as rules
from bot.domain.alert_ids import short_id
from bot.domain.durations import format_duration
from bot.domain.route import Route
from bot.domain.triage import Answer, Refusal, SnoozeSpec
from bot.slack import people
from bot.slack.client import SlackApi
from bot.slack.mrkdwn import date, escape, mention
from bot.store import triage as triage_store
from bot.store.db import Store
from bot.store.triage import TriageOutcome

log = logging.getLogger(__name__)

Verb = Literal["ack", "unack", "assign", "snooze", "unsnooze", "resolve", "bisect",
               "bisect_cancel", "retry"]
# answers that mean "the input named something that does not exist" (shown with usage)
UNKNOWN_CODES = frozenset({"not_found", "unknown_user"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    verb: Verb
    alert_id: int
    actor: str  # Slack user id: no account linking, the id is the identity
    assignee: str | None = None
    snooze: SnoozeSpec | None = None
    reason: str | None = None
    job: str | None = None


class BisectDesk(Protocol):
    """What triage asks of bisects (``bot.bisect.service.Bisects`` answers it)."""

    def start(self, alert_id: int, actor: str | None, job_key: str | None = None) -> Answer: ...
    def cancel(self, alert_id: int, actor: str | None) -> Answer: ...


class RetryDesk(Protocol):
    """What triage asks of retries (``bot.retry.service.Retries`` answers it)."""

    def request(self, alert_id: int, actor: str) -> Answer: ...


class Triage:
    """Performs triage actions for people: checks, one transaction, a wake-up, an answer."""

    def __init__(self, store: Store, routes: Mapping[str, Route], api: SlackApi,
                 clock: Callable[[], datetime], on_change: Callable[[set[int]], None],
                 bisects: BisectDesk, retries: RetryDesk | None = None) -> None:
        self.store = store
        self.routes = routes
        self.api = api
        self.clock = clock
        self.on_change = on_change
        self.bisects = bisects
        self.retries = retries

    def perform(self, request: Request) -> Answer:
        """Run one action for one person and say what happened."""
        alert = short_id(request.alert_id)
        state = triage_store.load(self.store.db, request.alert_id)
        if state is None:
            return Answer(False, f"There is no alert {alert}.", "not_found")
        route = self.routes.get(state.route) or Route(name=state.route)
        if request.verb in ("resolve", "bisect", "bisect_cancel", "retry"):
            refused = self._permission(request, route)
            if refused is not None:
                return refused
        if request.verb == "retry":
            if self.retries is None:
                return Answer(False, ":construction: Retrying is not set up in this bot.",
                              "not_configured")
            return self.retries.request(request.alert_id, request.actor)
        if request.verb == "bisect":
            return self._bisect(request, state)
        if request.verb == "bisect_cancel":
            cancelled = self.bisects.cancel(request.alert_id, request.actor)
            return Answer(cancelled.ok, cancelled.text, cancelled.code)
        assignee_name = None
        if request.verb == "assign":
            assert request.assignee is not None
            found, assignee_name = people.user_name(self.api, request.assignee)
            if not found:
                return Answer(False, f"There is no Slack user {mention(request.assignee)} "
                                     f"(`{request.assignee}`).", "unknown_user")
        now = self.clock()
        with self.store.transaction() as db:
            match request.verb:
                case "ack":
                    outcome = triage_store.acknowledge(db, request.alert_id, request.actor, now)
                case "unack":
                    outcome = triage_store.unacknowledge(db, request.alert_id, request.actor, now)
                case "assign":
                    outcome = triage_store.assign(db, request.alert_id, request.actor,
                                                  request.assignee or "", now, assignee_name)
                case "snooze":
                    assert request.snooze is not None
                    outcome = triage_store.snooze(db, request.alert_id, request.actor,
                                                  request.snooze, now)
                case "unsnooze":
                    outcome = triage_store.unsnooze(db, request.alert_id, request.actor, now)
                case "resolve":
                    outcome = triage_store.resolve(db, request.alert_id, request.actor,
                                                   request.reason, now)
                case _:
                    raise AssertionError(f"unknown verb {request.verb!r}")
        if outcome.refusal is not None:
            return Answer(False, refusal_text(alert, outcome.refusal, request.actor),
                          outcome.refusal.code)
        self.on_change({request.alert_id})
        return Answer(True, _done_text(alert, request, outcome))

    def _permission(self, request: Request, route: Route) -> Answer | None:
        """Resolving, bisecting and retrying may be limited per route (``resolvers``); None:
        allowed."""
        allowed = route.resolvers
        if rules.may_act(request.actor, allowed, people.group_members(self.api, allowed)):
            return None
        who = ", ".join(mention(slack_id) for slack_id in allowed)
        what = {"resolve": "resolve", "retry": "retry jobs of"}.get(request.verb, "bisect")
        return Answer(False, f":no_entry: Only {who} may {what} alerts of route `{route.name}`.",
                      "forbidden")

    def _bisect(self, request: Request, state: rules.TriageState) -> Answer:
        alert = short_id(request.alert_id)
        refused = rules.bisect_refusal(state)
        if refused is not None:
            return Answer(False, refusal_text(alert, refused, request.actor), refused.code)
        return self.bisects.start(request.alert_id, request.actor, job_key=request.job)


def _done_text(alert: str, request: Request, outcome: TriageOutcome) -> str:
    match request.verb:
        case "ack":
            return f":eyes: You acknowledged {alert}; reminders stop."
        case "unack":
            return f":leftwards_arrow_with_hook: You withdrew the acknowledgement of {alert}."
        case "assign":
            if request.assignee == request.actor:
                return f":bust_in_silhouette: You took {alert}; reminders stop."
            return (f":bust_in_silhouette: Assigned {alert} to {mention(request.assignee or '')}; "
                    "they were notified in the alert's thread.")
        case "snooze":
            assert request.snooze is not None and outcome.state is not None
            state = outcome.state
            until = f"{date(state.snoozed_until)}" if state.snoozed_until else ""
            if request.snooze.kind == "green":
                how = "until the jobs are green"
            elif request.snooze.kind == "sha":
                how = (f"until `{escape((state.snooze_sha or '')[:10])}` has results "
                       f"(at most until {until})")
            else:
                length = format_duration(request.snooze.duration or timedelta())
                how = f"for {length}, until {until}"
            return f":zzz: Snoozed {alert} {how}. A new failing job wakes it."
        case "unsnooze":
            return f":alarm_clock: Unsnoozed {alert}."
        case _:
            return (f":white_check_mark: Resolved {alert}. If its jobs fail on a newer commit "
                    "it reopens; a new breakage opens a new alert that links back.")


def refusal_text(alert: str, refusal: Refusal, actor: str) -> str:
    """Why nothing happened, naming whoever got there first."""
    who = "You" if refusal.by == actor else (mention(refusal.by) if refusal.by else "Someone")
    when = f" at {date(refusal.at)}" if refusal.at is not None else ""
    match refusal.code:
        case "not_found":
            return f"There is no alert {alert}."
        case "resolved":
            return f"{alert} is already resolved; nothing to do."
        case "already_acked":
            return f"{who} already acknowledged {alert}{when}."
        case "not_acked":
            return f"{alert} is not acknowledged, so there is nothing to withdraw."
        case "already_assigned":
            return f"{alert} is already assigned to {mention(refusal.detail or '')}."
        case "not_snoozed":
            return f"{alert} is not snoozed."
        case "bisecting":
            return f"A bisect is already running on {alert}."
    return f"{alert}: nothing changed ({refusal.code})."
