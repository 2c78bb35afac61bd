"""Bisects of alerts: start and cancel (Slack's buttons and command call these) and the tick.

``Bisects`` is the running bot's bisect desk; every tick derives what to do from SQLite
(``bisects``, ``bisect_probes``), so a restart resumes an unfinished bisect without
losing or repeating a run.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import datetime

import sqlite_utils

from bot.bisect.config import NOT_CONFIGURED_HINT, BisectConfig, BisectConfigError, bisect_config
from bot.bisect.culprit import UserByEmail, found_event_data
from bot.bisect.github import GitHubDispatcher
from bot.bisect.github_probes import BisectBroken, ProbeContext, advance_probe
from bot.bisect.local_probes import LocalWorkers
from bot.config import ConfigError
from bot.domain.alert_ids import short_id
from bot.domain.alerts import Member
from bot.domain.bisect_planner import (
    BisectLimits,
    BisectState,
    Observation,
    Outcome,
    Plan,
    plan,
    round_bound,
)
from bot.domain.model import CellStatus, JobResult
from bot.domain.route import Route
from bot.domain.suspects import preferred
from bot.domain.triage import Answer
from bot.github.rest import ApiRateLimited, ApiUnavailable
from bot.health import Health
from bot.schedule import Scheduler
from bot.slack.mrkdwn import literal
from bot.store import alerts as alert_store
from bot.store import bisects as store
from bot.store import history
from bot.store.alert_evidence import alert_evidence
from bot.store.bisects import Bisect, Probe
from bot.store.db import Store
from bot.store.details import alert_detail

log = logging.getLogger(__name__)

TICK_SECONDS = 30
JOBS_LISTED = 10
CANDIDATES_SHOWN = 10


class Bisects:
    """The running bot's bisects: what Slack starts and cancels, and the tick that runs them.

    It holds the only in-memory bisect state (a lock so ticks of one process never
    overlap, and the local probes' worker threads); everything else is in SQLite.
    """

    def __init__(self, store: Store, routes: Mapping[str, Route], clock: Callable[[], datetime],
                 health: Health, *, github_api_url: str, github_token: str | None,
                 on_change: Callable[[set[int]], None],
                 ingest_results: Callable[[list[JobResult]], object],
                 user_by_email: UserByEmail | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        self.store = store
        self.routes = routes
        self.clock = clock
        self.health = health
        self.github_api_url = github_api_url
        self.github_token = github_token
        self.on_change = on_change
        self.ingest_results = ingest_results
        self.user_by_email = user_by_email
        self.local = LocalWorkers(store, clock, secrets)
        self._tick_lock = threading.Lock()

    def start(self, alert_id: int, actor: str | None, job_key: str | None = None,
              k: int | None = None) -> Answer:
        """Record a new bisect of one of the alert's jobs; the tick dispatches its runs.

        Refused, with the reason, when the alert is resolved, the route has no bisect
        backend, the job is unknown or ambiguous, the limits forbid it, another bisect
        is running on the alert (the database's unique index decides between racing
        clicks), or the range cannot be bisected at all.
        """
        alert = short_id(alert_id)
        db = self.store.db
        head = alert_store.head(db, alert_id)
        if head is None:
            return Answer(False, f"There is no alert {alert}.", "not_found")
        route_name, repo, branch = head.route, head.repo, head.branch
        if head.state == "resolved":
            return Answer(False, f"{alert} is already resolved; nothing to bisect.",
                          "resolved")
        route = self.routes.get(route_name)
        try:
            config = bisect_config(route) if route is not None else None
        except BisectConfigError as exc:
            return Answer(False, f":warning: Bisect is misconfigured: {literal(str(exc))}",
                          "bad_config")
        if config is None:
            return Answer(False, f":construction: Bisect is not configured for route "
                                 f"`{route_name}`: {NOT_CONFIGURED_HINT}.", "not_configured")
        if config.backend == "github" and not self.github_token:
            return Answer(False, ":construction: Bisect needs `GITHUB_TOKEN` (with "
                                 "actions:write) to dispatch workflows.", "not_configured")
        k = config.k if k is None else k
        member = _choose_job(db, alert_id, repo, branch, job_key)
        if isinstance(member, str):
            return Answer(False, member, "job")
        assert member.last_green is not None
        suspects = tuple(c.sha for c in history.commits_between(
            db, repo, branch, member.last_green.position, member.first_failing.position))
        known = _known_results(db, repo, branch, member)
        limits = config.limits
        ranked = _ranked(db, alert_id, route, suspects)
        try:
            state = replace(limits.state(member.last_green.sha, suspects, k),
                            observations=tuple(Observation(sha, o) for sha, o in known),
                            ranked=ranked)
        except ValueError as exc:
            return Answer(False, f"Cannot bisect {alert}: {literal(str(exc))}.", "limits")
        first = plan(state)
        if first.status == "failed":
            return Answer(False, f"Cannot bisect *{literal(member.job_key)}* of {alert}: "
                                 f"{literal(str(first.reason))}.", "planner")
        now = self.clock()
        with self.store.transaction() as wdb:
            # checked again under the write lock: the alert may have been resolved since
            # it was read above, and a bisect of a resolved alert must never start
            current = alert_store.head(wdb, alert_id)
            if current is None or current.state == "resolved":
                return Answer(False, f"{alert} is already resolved; nothing to bisect.",
                              "resolved")
            refusal = limits.refusal(k, store.running_count(wdb, route_name))
            if refusal is not None:
                return Answer(False, f"Cannot bisect {alert} now: {literal(str(refusal))}.",
                              "limits")
            try:
                bisect_id = store.insert(
                    wdb, alert_id=alert_id, route=route_name, repo=repo, branch=branch,
                    job_key=member.job_key, backend=config.backend, k=k, last_good=state.last_good,
                    suspects=suspects, limits=asdict(limits), started_by=actor, now=now,
                    ranked=ranked)
            except sqlite3.IntegrityError:
                running = store.running_for_alert(wdb, alert_id)
                who = f" (started by <@{running.started_by}>)" if running and running.started_by \
                    else ""
                return Answer(False, f"A bisect is already running on {alert}{who}.",
                              "bisecting")
            for sha, outcome in known:
                store.add_probe(wdb, bisect_id, sha, 0, source="ci", outcome=outcome,
                                detail="CI result", now=now)
            alert_store.add_event(wdb, alert_id, "bisect_started", now, actor=actor,
                                  key=member.job_key, suspects=len(suspects), runs_per_round=k,
                                  max_runs=limits.max_runs, backend=config.backend,
                                  candidates=len(first.candidates),
                                  likeliest=ranked[0] if ranked else None,
                                  guided=bool(ranked and ranked[0] in first.to_test))
            store.set_alert_status(wdb, alert_id, _starting_text(len(suspects), first))
        self.on_change({alert_id})
        rounds = round_bound(max(len(first.candidates), 1), k)
        return Answer(
            True,
            f":mag: Bisecting *{literal(member.job_key)}* of {alert}: {len(suspects)} suspects, "
            f"{k} runs per round (about {rounds} rounds, then confirmation), at most "
            f"{limits.max_runs} runs. "
            "Progress goes to the alert's thread.",
        )

    def cancel(self, alert_id: int, actor: str | None) -> Answer:
        """Stop the alert's running bisect; runs already started finish but are ignored."""
        alert = short_id(alert_id)
        now = self.clock()
        with self.store.transaction() as db:
            running = store.running_for_alert(db, alert_id)
            if running is None or not store.finish(db, running.id, "cancelled", now,
                                                   reason="cancelled"):
                return Answer(False, f"No bisect is running on {alert}.", "not_bisecting")
            runs = sum(1 for p in store.probes(db, running.id) if p.source == "run")
            alert_store.add_event(db, alert_id, "bisect_cancelled", now, actor=actor,
                                  key=running.job_key, runs=runs)
            store.set_alert_status(db, alert_id, None)
        self.on_change({alert_id})
        return Answer(True, f":no_entry_sign: Cancelled the bisect of {alert} after "
                            f"{runs} runs. Runs already started finish on CI; the "
                            "bisect ignores them.")

    def advance(self, github: GitHubDispatcher | None = None) -> int:
        """One tick: move every running bisect as far as it can go; returns how many ran.

        Ticks of one process never overlap (a second one returns at once); two processes
        are kept apart by the scheduler's lease, and every write is guarded in SQL.
        """
        if not self._tick_lock.acquire(blocking=False):
            return 0
        own: GitHubDispatcher | None = None
        try:
            running = store.running(self.store.db)
            if github is None and any(b.backend == "github" for b in running):
                github = own = GitHubDispatcher(self.github_api_url, self.github_token,
                                                clock=self.clock)
            problems = 0
            for bisect in running:
                try:
                    self._advance(bisect, github)
                except (ApiRateLimited, ApiUnavailable) as exc:  # busy: the next tick retries
                    problems += 1
                    log.warning("bisect %s waits for GitHub: %s", bisect.id, exc)
                    self.health.error("bisects", f"{type(exc).__name__}: {exc}")
            if running and not problems:
                self.health.ok("bisects", note=f"{len(running)} running")
            return len(running)
        finally:
            if own is not None:
                own.close()
            self._tick_lock.release()

    def _advance(self, bisect: Bisect,
                 github: GitHubDispatcher | None) -> None:
        route = self.routes.get(bisect.route)
        try:
            config = bisect_config(route) if route is not None else None
        except BisectConfigError as exc:
            self._fail(bisect, str(exc))
            return
        if config is None or config.backend != bisect.backend:
            self._fail(bisect, f"route {bisect.route} no longer has the {bisect.backend} "
                               "bisect backend configured")
            return
        for _ in range(2):  # finish the round, then dispatch the next one in the same tick
            try:
                for probe in store.probes(self.store.db, bisect.id):
                    if probe.source != "run" or probe.done:
                        continue
                    if bisect.backend == "github":
                        assert github is not None
                        context = ProbeContext(self.store, self.clock, self.ingest_results,
                                               bisect, config, github)
                        advance_probe(context, probe)
                    else:
                        self.local.advance(config, probe)
            except BisectBroken as exc:
                self._fail(bisect, str(exc))
                return
            probes = store.probes(self.store.db, bisect.id)
            if any(p.source == "run" and not p.done for p in probes):
                return
            if not self._next_round(bisect, config, probes):
                return
            fresh = store.get(self.store.db, bisect.id)
            if fresh is None or fresh.state != store.RUNNING:
                return
            bisect = fresh

    def _next_round(self, bisect: Bisect, config: BisectConfig,
                    probes: Sequence[Probe]) -> bool:
        """Report the round that just ended, then start the next or finish; True if one started."""
        step = plan(planner_state(bisect, probes))
        found_data = None
        runs = sum(1 for p in probes if p.source == "run")
        if step.status == "found" and step.culprit:
            # the Slack lookup happens outside the write transaction
            found_data = found_event_data(self.store.db, bisect, config, self.user_by_email,
                                          step.culprit, step.parent, runs, bisect.round)
        now = self.clock()
        started = False
        with self.store.transaction() as db:
            current = store.get(db, bisect.id)
            if current is None or current.state != store.RUNNING or current.round != bisect.round:
                return False  # cancelled, or another tick moved on meanwhile
            reported = current.reported_round
            if current.round > reported:
                earlier = [p for p in probes if p.round != current.round]
                before = plan(planner_state(current, earlier)).candidates
                alert_store.add_event(
                    db, current.alert_id, "bisect_round", now, round=current.round,
                    before=len(before), after=len(step.candidates), key=current.job_key,
                    probes=[store.as_dict(p) for p in probes
                            if p.round == current.round and p.source == "run"])
                reported = current.round
            if step.status == "running" and step.to_test:
                number = current.round + 1
                for sha in step.to_test:
                    store.add_probe(db, current.id, sha, number)
                store.set_rounds(db, current.id, round_=number, reported_round=reported)
                store.set_alert_status(db, current.alert_id,
                                       _round_text(number, len(current.suspects), step))
                alert_store.bump_version(db, current.alert_id)
                started = True
            else:
                store.set_rounds(db, current.id, round_=current.round, reported_round=reported)
                _finish(db, current, step, found_data, runs, now)
        self.on_change({bisect.alert_id})
        return started

    def _fail(self, bisect: Bisect, reason: str) -> None:
        now = self.clock()
        with self.store.transaction() as db:
            if not store.finish(db, bisect.id, "failed", now, reason=reason):
                return
            alert_store.add_event(db, bisect.alert_id, "bisect_failed", now, reason=reason,
                                  key=bisect.job_key)
            store.set_alert_status(db, bisect.alert_id, None)
        self.on_change({bisect.alert_id})

    def register(self, scheduler: Scheduler) -> None:
        """Check every route's bisect settings (bad ones fail at start) and schedule the tick."""
        for route in self.routes.values():
            try:
                config = bisect_config(route)
            except BisectConfigError as exc:
                raise ConfigError(str(exc)) from None
            if config is not None and config.backend == "github" and not self.github_token:
                raise ConfigError(f"routes.{route.name}.bisect: the github backend needs "
                                  "GITHUB_TOKEN (with actions:write) to dispatch workflows")
        scheduler.every("bisects", TICK_SECONDS, self.advance)


# ----------------------------------------------------------------- choosing what to bisect




def _choose_job(db: sqlite_utils.Database, alert_id: int, repo: str, branch: str,
                wanted: str | None) -> Member | str:
    """The member to bisect, or the answer explaining why none can be chosen.

    By default the job with the narrowest range (fewest suspects): it needs the
    fewest runs, and the same change most likely broke the others.
    """
    members = alert_store.members(db, alert_id)
    alert = short_id(alert_id)
    if not members:
        return f"{alert} has no failing jobs to bisect."
    if wanted:
        needle = wanted.strip().lower()
        exact = [m for m in members if m.job_key.lower() == needle]
        matches = exact or [m for m in members if needle in m.job_key.lower()]
        if len(matches) != 1:
            shown = literal(wanted)
            problem = (f"No job of {alert} matches `{shown}`." if not matches else
                       f"`{shown}` matches {len(matches)} jobs of {alert}; say which.")
            return f"{problem} Its jobs:\n{_job_list(matches or members)}"
        member = matches[0]
        if member.last_green is None:
            return (f"*{literal(member.job_key)}* has no passing commit in the bot's history, "
                    "so there is no range to bisect.")
        return member
    ranged = [m for m in members if m.last_green is not None]
    if not ranged:
        return (f"No job of {alert} has a passing commit in the bot's history, so there is no "
                "range to bisect.")

    def width(m: Member) -> tuple[int, bool, str]:
        assert m.last_green is not None
        count = history.count_between(db, repo, branch, m.last_green.position,
                                      m.first_failing.position)
        return count, m.recovered, m.job_key

    return min(ranged, key=width)


def _job_list(members: Sequence[Member]) -> str:
    lines = [f"• `{literal(m.job_key)}`" for m in members[:JOBS_LISTED]]
    if len(members) > JOBS_LISTED:
        lines.append(f"• _+{len(members) - JOBS_LISTED} more_")
    return "\n".join(lines)


def _known_results(db: sqlite_utils.Database, repo: str, branch: str,
                   member: Member) -> list[tuple[str, Outcome]]:
    """Results CI already has strictly inside the range: free probes.

    The range's ends are the planner's premises and are left out (they would count
    twice). Flaky cells passed only on a rerun and say nothing reliable either way.
    """
    assert member.last_green is not None
    cells = store.settled_cells(db, repo, branch, member.job_key, member.last_green.position,
                                member.first_failing.position)
    return [(sha, Outcome.FAIL if status is CellStatus.FAILURE else Outcome.PASS)
            for sha, status in cells]


# ----------------------------------------------------------------------------- rounds


def planner_state(bisect: Bisect, probes: Sequence[Probe]) -> BisectState:
    """The planner's view of a bisect, rebuilt from its rows on every tick."""
    limits = BisectLimits(**bisect.limits)
    return replace(
        limits.state(bisect.last_good, bisect.suspects, bisect.k),
        observations=tuple(Observation(p.sha, p.outcome) for p in probes
                           if p.done and p.outcome is not None),
        in_flight=tuple(p.sha for p in probes if p.source == "run" and not p.done),
        runs_used=sum(1 for p in probes if p.source == "run"),
        ranked=bisect.ranked,
    )


def _ranked(db: sqlite_utils.Database, alert_id: int, route: Route | None,
            suspects: Sequence[str]) -> tuple[str, ...]:
    """The alert's suspects with positive evidence, most likely first, within ``suspects``:
    the planner brackets the likeliest when that cannot cost a round (``BISECT.md``)."""
    detail = alert_detail(db, alert_id)
    if detail is None:
        return ()
    facts = alert_evidence(db, detail, code_area=route.code_area if route else ())
    wanted = set(suspects)
    return tuple(sha for sha in preferred(facts.ranking) if sha in wanted)




def _finish(db: sqlite_utils.Database, bisect: Bisect, step: Plan,
            found_data: dict[str, object] | None, runs: int, now: datetime) -> None:
    if step.status == "found" and found_data is not None:
        store.finish(db, bisect.id, "found", now, culprit=step.culprit)
        alert_store.add_event(db, bisect.alert_id, "bisect_found", now, **found_data)
    else:
        reason = step.reason or "the planner had nothing left to test"
        store.finish(db, bisect.id, "failed", now, reason=reason)
        alert_store.add_event(db, bisect.alert_id, "bisect_failed", now, reason=reason,
                              key=bisect.job_key, runs=runs,
                              candidates=list(step.candidates[:CANDIDATES_SHOWN]),
                              candidate_count=len(step.candidates))
    store.set_alert_status(db, bisect.alert_id, None)




def _starting_text(total: int, first: Plan) -> str:
    left = len(first.candidates)
    known = f" ({total - left} settled by CI results)" if left < total else ""
    return f"starting, {_suspects(total)}{known}"


def _round_text(number: int, total: int, step: Plan) -> str:
    """The parent's status while a round runs, e.g. ``round 2, 16 -> 4 suspects``."""
    left = len(step.candidates)
    text = (f"round {number}, {_suspects(total)}" if left == total
            else f"round {number}, {total} -> {_suspects(left)}")
    if left == 1:
        text += f", confirming {step.candidates[0][:10]}"
    return text


def _suspects(count: int) -> str:
    return f"{count} suspect" if count == 1 else f"{count} suspects"
