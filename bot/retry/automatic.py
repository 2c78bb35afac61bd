"""The bot's own retries: one rerun of a job's first failure, as GitLab's broken-master
automation does, for routes with ``auto_retry`` (rules: ``bot/domain/auto_retry.py``).

A scheduler job (``auto_retries``), never ingest or the Slack sender: each tick finds the
jobs that failed lately, takes each one's first failure by the domain rule, waits until its
workflow run has finished (GitHub refuses reruns before), and plans the rerun in
``job_retries`` within the route's budget, in one write transaction. The retry desk
(``service.py``) then asks GitHub and follows the result like any retry, and a passing
rerun makes the commit a flaky pass, so the streak does not grow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from bot.domain.auto_retry import affordable, first_failure, runs_to_retry
from bot.domain.cells import is_failed_run
from bot.domain.model import JobResult
from bot.domain.route import Route
from bot.domain.streak import compute_streak
from bot.github import rest
from bot.github.rest import ApiRateLimited, ApiUnavailable, Gone
from bot.health import Health
from bot.retry.service import Retries
from bot.schedule import Scheduler
from bot.store import alerts as alert_store
from bot.store import first_failures, history
from bot.store import results as results_store
from bot.store import retries as retry_store
from bot.store.db import Store

log = logging.getLogger(__name__)

NAME = "auto_retries"
TICK_SECONDS = 30
LOOK_EVERY = timedelta(minutes=2)  # a workflow run still running is looked at this often
SKIP_FOR = timedelta(hours=1)  # a run rerun by someone else since: its failed job is left be


@dataclass(frozen=True, slots=True)
class Candidate:
    """A first failure the domain rule picked: the failed runs of one cell to rerun."""

    route: Route
    repo: str
    job_key: str
    sha: str
    runs: tuple[JobResult, ...]


@dataclass
class AutoRetryReport:
    """What one tick did (tests assert on it; ``/healthz`` shows its summary)."""

    planned: list[tuple[str, str, str]] = field(default_factory=list)  # (route, key, sha)
    waiting: int = 0  # first failures whose run (or a sibling shard, or the log) is not done
    over_budget: list[tuple[str, str, str]] = field(default_factory=list)
    alerts: set[int] = field(default_factory=set)
    paused_until: datetime | None = None

    def summary(self) -> str:
        text = f"{len(self.planned)} first failures retried, {self.waiting} waiting"
        if self.over_budget:
            routes = sorted({route for route, _, _ in self.over_budget})
            text += (f"; budget used up for {', '.join(routes)}: {len(self.over_budget)} "
                     "first failures not retried")
        return text


class AutoRetries:
    """Plans the automatic retries; the retry desk asks GitHub for them."""

    def __init__(self, store: Store, routes: Mapping[str, Route],
                 clock: Callable[[], datetime], health: Health, *, github_api_url: str,
                 github_token: str | None, retries: Retries,
                 on_change: Callable[[set[int]], None]) -> None:
        self.store = store
        self.routes = routes
        self.clock = clock
        self.health = health
        self.github_api_url = github_api_url
        self.github_token = github_token
        self.retries = retries
        self.on_change = on_change
        self._next_look: dict[tuple[str, int], datetime] = {}  # spacing only: lost on restart
        self._told: set[tuple[str, str, str]] = set()  # over budget, logged once each
        self._paused_until: datetime | None = None
        self._lock = threading.Lock()

    def enabled_routes(self) -> list[Route]:
        return [r for r in self.routes.values() if r.auto_retry]

    def register(self, scheduler: Scheduler) -> None:
        """Only with ``GITHUB_TOKEN`` and a route that asks for it: nothing runs otherwise."""
        if self.github_token and self.enabled_routes():
            scheduler.every(NAME, TICK_SECONDS, self.run_once)

    def run_once(self) -> AutoRetryReport:
        report = AutoRetryReport()
        routes = self.enabled_routes()
        if not self.github_token or not routes:
            return report
        if not self._lock.acquire(blocking=False):
            return report
        try:
            now = self.clock()
            if self._paused_until is not None and now < self._paused_until:
                report.paused_until = self._paused_until
                return report
            candidates = self._candidates(routes, report)
            if candidates:
                with rest.client(self.github_api_url, self.github_token) as http:
                    ready = self._ready(http, candidates, report)
                self._plan(ready, report)
            self.health.ok(NAME, note=report.summary())
        except ApiRateLimited as limited:
            self._paused_until = report.paused_until = limited.until
            self.health.error(NAME, f"paused until {limited.until.isoformat()}: "
                                    f"{limited.reason}")
        finally:
            self._lock.release()
        if report.alerts:
            self.on_change(set(report.alerts))
        if report.planned:
            self.retries.advance()  # ask GitHub now rather than at the desk's next tick
        return report

    # --- which first failures -----------------------------------------------------------------

    def _candidates(self, routes: list[Route], report: AutoRetryReport) -> list[Candidate]:
        now = self.clock()
        db = self.store.db
        horizon = max(r.max_age for r in routes)
        found: list[Candidate] = []
        for repo, key in first_failures.failed_lately(db, now - horizon):
            workflow, _, name = key.partition(" / ")
            for route in routes:
                if route.repo != repo or not route.watches_job(workflow, name):
                    continue
                streak = compute_streak(history.walk_cells(db, repo, route.branch, key))
                cell = first_failure(streak, route.threshold, now, route.max_age)
                if cell is None or retry_store.retried_at(db, repo, key, cell.sha):
                    continue
                results = results_store.results_for_cell(db, repo, key, cell.sha)
                infra, reading = first_failures.run_facts(
                    db, repo, [r.job_id for r in results if is_failed_run(r)])
                decision = runs_to_retry(results, infra, reading)
                if decision.wait:
                    report.waiting += 1
                if not decision.runs:
                    continue
                if not affordable(len(decision.runs), retry_store.automatic_left(
                        db, route.name, route.auto_retry_budget, now)):
                    self._over_budget(route, key, cell.sha, report)  # and GitHub not asked
                    continue
                found.append(Candidate(route, repo, key, cell.sha, decision.runs))
                break  # one route plans it; the others would plan the same jobs
        return found

    def _over_budget(self, route: Route, key: str, sha: str, report: AutoRetryReport) -> None:
        where = (route.name, key, sha)
        report.over_budget.append(where)
        if where not in self._told:  # logged once; /healthz notes it every tick
            self._told.add(where)
            log.warning("auto retry: budget of %d reruns per 24 h used up for route %s; "
                        "first failure of %s at %s not retried", route.auto_retry_budget,
                        route.name, key, sha[:12])

    def _ready(self, http: httpx.Client, candidates: list[Candidate],
               report: AutoRetryReport) -> list[Candidate]:
        """The candidates whose workflow runs have finished, at the attempt that failed."""
        now = self.clock()
        self._next_look = {k: at for k, at in self._next_look.items() if at > now}
        states: dict[tuple[str, int], rest.RunState | None] = {}
        ready: list[Candidate] = []
        for candidate in candidates:
            finished = True
            for run in candidate.runs:
                assert run.run_id is not None  # the domain rule keeps runs with a run id
                where = (candidate.repo, run.run_id)
                if where not in states:
                    states[where] = self._look(http, where, now)
                state = states[where]
                if state is None or state.status != "completed":
                    finished = False
                elif state.attempt != run.attempt:
                    # rerun by someone since: GitHub reruns only the latest attempt's jobs,
                    # and that rerun's result answers the question anyway
                    self._next_look[where] = now + SKIP_FOR
                    finished = False
            if finished:
                ready.append(candidate)
            else:
                report.waiting += 1
        return ready

    def _look(self, http: httpx.Client, where: tuple[str, int],
              now: datetime) -> rest.RunState | None:
        if where in self._next_look:
            return None
        self._next_look[where] = now + LOOK_EVERY
        repo, run_id = where
        try:
            return rest.run_state(http, repo, run_id, now)
        except Gone:
            self._next_look[where] = now + SKIP_FOR
        except ApiUnavailable as exc:
            log.info("auto retry: could not look at run %s of %s yet: %s", run_id, repo, exc)
        return None

    # --- planning -----------------------------------------------------------------------------

    def _plan(self, ready: list[Candidate], report: AutoRetryReport) -> None:
        """Plan each ready first failure in one write transaction: the budget is counted and
        spent inside it, so two processes (or a tick racing a redelivery) never exceed it
        or plan a job twice."""
        if not ready:
            return
        now = self.clock()
        with self.store.transaction() as db:
            for candidate in ready:
                route = candidate.route
                where = (route.name, candidate.job_key, candidate.sha)
                if retry_store.retried_at(db, candidate.repo, candidate.job_key, candidate.sha):
                    continue  # another process planned it since this tick read
                new = retry_store.plan_automatic(db, route.name, route.auto_retry_budget,
                                                 candidate.runs, candidate.job_key, now)
                if new is None:  # spent by the candidates before this one
                    self._over_budget(route, candidate.job_key, candidate.sha, report)
                    continue
                if not new:
                    continue
                report.planned.append(where)
                log.info("auto retry: rerunning %d failed job(s) of %s at %s (first failure)",
                         len(new), candidate.job_key, candidate.sha[:12])
                for alert_id in retry_store.alerts_showing(db, candidate.repo,
                                                           candidate.job_key, candidate.sha,
                                                           open_only=True):
                    alert_store.add_event(db, alert_id, "retry_requested", now, actor=None,
                                          jobs=[r.job_name for r in new], sha=candidate.sha,
                                          already=0, automatic=True)
                    alert_store.bump_version(db, alert_id)
                    report.alerts.add(alert_id)
