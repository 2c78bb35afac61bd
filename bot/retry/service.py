"""The retry desk: rerun an alert's newest failing commit's failed jobs, once per job, and
follow the reruns until their results are in (the bot's own retries of first failures,
``automatic.py``, are planned in the same table and asked for by the same tick).

``request`` (the Retry button, ``/inductor retry``) only records what to rerun, in one
transaction, so two racing clicks rerun each job once. The ``retries`` scheduler job asks
GitHub, looks before asking again when an answer was lost, and settles each retry once
its result arrives by webhook or poller.

How it asks: a click's failed jobs of one run in one request (``POST .../actions/runs/{id}/
rerun-failed-jobs``: a person asked for the failed jobs of that commit). The bot's own
retries only ever with ``POST .../actions/jobs/{id}/rerun``, one job of a run at a time:
``rerun-failed-jobs`` would also rerun what the bot chose not to (an infrastructure
failure, a job past the budget), and GitHub refuses a second job rerun while the run is
running the first one's attempt. The rest of the run's jobs stay planned and are asked
once the run has completed again (``_ask_automatic``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import httpx
import sqlite_utils

from bot.domain.alert_ids import short_id
from bot.domain.auto_retry import AUTOMATIC
from bot.domain.cells import cell_verdict
from bot.domain.model import CellStatus, JobResult
from bot.domain.route import Route
from bot.domain.triage import Answer
from bot.github import rest
from bot.github.rest import ApiRateLimited, ApiUnavailable, Gone, RerunRefused, RerunUncertain
from bot.health import Health
from bot.schedule import Scheduler
from bot.store import alerts as alert_store
from bot.store import results as results_store
from bot.store import retries as store
from bot.store.db import Store
from bot.store.retries import Retry

log = logging.getLogger(__name__)

TICK_SECONDS = 20
LOOK_AGAIN = timedelta(seconds=30)  # after a lost answer, before looking for the rerun
MAX_TRIES = 3  # requests per retry before giving up
RESULT_WAIT = timedelta(hours=12)  # a rerun with no result by then is reported lost
RUN_WAIT = timedelta(minutes=2)  # a run rerunning a job is looked at again this often
ALREADY_RUNNING = "already running"  # GitHub's refusal while the run runs ("This workflow ...")
NAME = "retries"


class Retries:
    """The running bot's retry desk (what Slack asks for) and its tick."""

    def __init__(self, store: Store, routes: Mapping[str, Route],
                 clock: Callable[[], datetime], health: Health, *, github_api_url: str,
                 github_token: str | None, on_change: Callable[[set[int]], None]) -> None:
        self.store = store
        self.routes = routes
        self.clock = clock
        self.health = health
        self.github_api_url = github_api_url
        self.github_token = github_token
        self.on_change = on_change
        self._tick_lock = threading.Lock()

    # --- asking -----------------------------------------------------------------------------

    def request(self, alert_id: int, actor: str) -> Answer:
        """Plan a rerun of each failed job at the newest failing commit of each failing job."""
        alert = short_id(alert_id)
        if not self.github_token:
            return Answer(False, ":construction: Retrying needs `GITHUB_TOKEN` (with "
                                 "actions:write) to rerun jobs.", "not_configured")
        db = self.store.db
        head = alert_store.head(db, alert_id)
        if head is None:
            return Answer(False, f"There is no alert {alert}.", "not_found")
        if head.state == "resolved":
            return Answer(False, f"{alert} is already resolved; nothing to retry.", "resolved")
        runs, key_of = failed_runs(db, head.repo, alert_id)
        if not runs:
            return Answer(False, f"{alert} has no failed job to retry.", "nothing")
        now = self.clock()
        with self.store.transaction() as wdb:
            new, before = store.plan(wdb, alert_id, runs, key_of, actor, now)
            if new:
                alert_store.add_event(wdb, alert_id, "retry_requested", now, actor=actor,
                                      jobs=[r.job_name for r in new],
                                      sha=new[0].sha, already=len(before))
                alert_store.bump_version(wdb, alert_id)
        if not new:
            asker = before[0].requested_by
            who = ("you" if asker == actor else "the bot, automatically" if asker == AUTOMATIC
                   else f"<@{asker}>" if asker[:1] in "UW" else asker)
            return Answer(False, f"The failed jobs of {alert} at `{before[0].sha[:7]}` were "
                                 f"already retried (asked by {who}); each job is rerun once.",
                          "already_retried")
        self.on_change({alert_id})
        noun = "job" if len(new) == 1 else "jobs"
        extra = f" ({len(before)} retried already)" if before else ""
        return Answer(True, f":repeat: Retrying {len(new)} failed {noun} of {alert} at "
                            f"`{new[0].sha[:7]}`{extra}; the alert shows their results.")

    # --- the tick ---------------------------------------------------------------------------

    def advance(self) -> int:
        """Ask GitHub for planned reruns, look for lost ones, settle finished ones."""
        if not self._tick_lock.acquire(blocking=False):
            return 0
        changed: set[int] = set()
        try:
            with rest.client(self.github_api_url, self.github_token) as http:
                self._ask(http, changed)
            self._settle(changed)
            self.health.ok(NAME)
        except ApiRateLimited as limited:
            with self.store.transaction() as db:
                for retry in store.due(db, self.clock()):
                    store.move(db, retry.id, retry.state, self.clock(), next_try_at=limited.until)
            self.health.error(NAME, f"paused until {limited.until.isoformat()}: "
                                    f"{limited.reason}")
        finally:
            self._tick_lock.release()
            if changed:
                self.on_change(changed)
        return len(changed)

    def _ask(self, http: httpx.Client, changed: set[int]) -> None:
        due = store.due(self.store.db, self.clock())
        for retry in [r for r in due if r.state == store.UNCERTAIN]:
            self._look(http, retry, changed)
        planned = [r for r in store.due(self.store.db, self.clock()) if r.state == store.PLANNED]
        by_run: dict[tuple[str, int | None], list[Retry]] = {}
        automatic: dict[tuple[str, int | None], list[Retry]] = {}
        for retry in planned:
            # a retry without a run id goes alone (a negative key no run has)
            run = retry.run_id if retry.run_id is not None else -retry.id
            (automatic if retry.automatic else by_run).setdefault(
                (retry.repo, run), []).append(retry)
        started: set[tuple[str, int | None]] = set()  # runs given a new attempt this tick
        for (repo, run_id), group in by_run.items():
            if self._rerun(http, repo, run_id, group, changed):
                started.add((repo, run_id))
        for (repo, run_id), group in automatic.items():
            self._ask_automatic(http, repo, run_id, group, (repo, run_id) in started, changed)

    def _rerun(self, http: httpx.Client, repo: str, run_id: int | None, group: list[Retry],
               changed: set[int]) -> bool:
        """A click's retries of one run, in one request; True when a rerun may have started."""
        now = self.clock()
        try:
            if len(group) > 1 and run_id is not None and run_id > 0:
                rest.rerun_failed_jobs(http, repo, run_id, now)
            else:
                rest.rerun_job(http, repo, group[0].job_id, now)
        except RerunUncertain as exc:
            with self.store.transaction() as db:
                for retry in group:
                    store.move(db, retry.id, store.UNCERTAIN, now, detail=str(exc),
                               next_try_at=now + LOOK_AGAIN, tried=True)
            return True
        except RerunRefused as exc:
            with self.store.transaction() as db:
                for retry in group:
                    store.settle(db, retry.id, store.REFUSED, None, None, now,
                                 detail=f"GitHub refused: {exc}")
                    _touch(db, retry, changed)
            return False
        with self.store.transaction() as db:
            for retry in group:
                store.move(db, retry.id, store.REQUESTED, now, tried=True)
                _touch(db, retry, changed)
        log.info("reran %d job(s) of %s run %s", len(group), repo, run_id)
        return True

    def _ask_automatic(self, http: httpx.Client, repo: str, run_id: int | None,
                       group: list[Retry], busy: bool, changed: set[int]) -> None:
        """The bot's own retries of one run: exactly the planned jobs, one per request, at
        most one request per run and tick (``busy``: the run got a new attempt this tick).

        A job already rerun by someone since (a newer run of it has reported) is not asked
        for again: that run's result settles it. Before asking in a run the bot reran
        before, the run is looked at: while it runs, the jobs wait (GitHub would refuse).
        """
        now = self.clock()
        pending: list[Retry] = []
        with self.store.transaction() as db:
            for retry in group:
                if store.rerun_seen(db, retry):
                    store.move(db, retry.id, store.REQUESTED, now,
                               detail="rerun on GitHub already; its result settles this")
                    _touch(db, retry, changed)
                else:
                    pending.append(retry)
        if not pending:
            return
        if busy:
            self._wait_for_run(pending, now, "the run is rerunning other jobs")
            return
        attempt: int | None = None
        if run_id is not None and run_id > 0 and store.asked_in_run(self.store.db, repo, run_id):
            try:
                state = rest.run_state(http, repo, run_id, now)
            except Gone:
                with self.store.transaction() as db:
                    for retry in pending:
                        store.settle(db, retry.id, store.REFUSED, None, None, now,
                                     detail=f"run {run_id} is gone")
                        _touch(db, retry, changed)
                return
            except ApiUnavailable as exc:
                log.info("auto retry: could not look at run %s of %s yet: %s", run_id, repo, exc)
                self._wait_for_run(pending, now, f"could not look at the run: {exc}")
                return
            if state.status != "completed":
                self._wait_for_run(pending, now, "the run is running an earlier rerun")
                return
            attempt = state.attempt
        for i, retry in enumerate(pending):
            try:
                rest.rerun_job(http, repo, retry.job_id, now)
            except RerunUncertain as exc:
                with self.store.transaction() as db:
                    store.move(db, retry.id, store.UNCERTAIN, now, detail=str(exc),
                               next_try_at=now + LOOK_AGAIN, tried=True, attempt=attempt)
                self._wait_for_run(pending[i + 1:], now, "the run may be rerunning a job")
                return
            except RerunRefused as exc:
                if ALREADY_RUNNING in str(exc).lower():
                    self._wait_for_run(pending[i:], now, f"GitHub said: {exc}")
                    return
                with self.store.transaction() as db:
                    store.settle(db, retry.id, store.REFUSED, None, None, now,
                                 detail=f"GitHub refused: {exc}")
                    _touch(db, retry, changed)
                continue  # nothing started: the run's next planned job may be asked now
            with self.store.transaction() as db:
                store.move(db, retry.id, store.REQUESTED, now, tried=True, attempt=attempt)
                _touch(db, retry, changed)
            log.info("auto retry: reran job %s of %s run %s", retry.job_id, repo, run_id)
            self._wait_for_run(pending[i + 1:], now, "the run is rerunning another job")
            return

    def _wait_for_run(self, retries: list[Retry], now: datetime, why: str) -> None:
        """Planned jobs whose run is (or may be) running a rerun: asked on a later tick,
        still planned (neither a refusal nor a second charge on the budget). One whose run
        never completes in ``RESULT_WAIT`` is reported lost."""
        if not retries:
            return
        with self.store.transaction() as db:
            for retry in retries:
                if now - retry.requested_at > RESULT_WAIT:
                    store.settle(db, retry.id, store.LOST, None, None, now,
                                 detail=f"never asked: {why} since {RESULT_WAIT}")
                else:
                    store.move(db, retry.id, store.PLANNED, now, detail=f"waiting: {why}",
                               next_try_at=now + RUN_WAIT)

    def _look(self, http: httpx.Client, retry: Retry, changed: set[int]) -> None:
        """A request whose answer was lost: did the run get a new attempt? Else ask again."""
        now = self.clock()
        started = False
        if retry.run_id is not None:
            try:
                started = rest.run_attempt(http, retry.repo, retry.run_id, now) > retry.attempt
            except Gone:
                started = False
            except ApiUnavailable as exc:
                log.info("retry %s: could not look at run %s yet: %s", retry.id, retry.run_id,
                         exc)
                return
        with self.store.transaction() as db:
            if started:
                store.move(db, retry.id, store.REQUESTED, now)
                _touch(db, retry, changed)
            elif retry.tries >= MAX_TRIES:
                store.settle(db, retry.id, store.REFUSED, None, None, now,
                             detail=f"no rerun started after {retry.tries} requests")
                _touch(db, retry, changed)
            else:
                store.move(db, retry.id, store.PLANNED, now, next_try_at=now)

    def _settle(self, changed: set[int]) -> None:
        """Reruns whose result arrived: passed, failed or cancelled; one thread reply each
        time results come in for an alert."""
        now = self.clock()
        settled: dict[int, list[dict[str, str]]] = {}
        with self.store.transaction() as db:
            for retry in store.waiting(db):
                found = store.newer_result(db, retry)
                if found is None:
                    if now - retry.requested_at > RESULT_WAIT and store.settle(
                            db, retry.id, store.LOST, None, None, now,
                            detail="no result arrived"):
                        for alert_id in _shown_in(db, retry):
                            settled.setdefault(alert_id, []).append(
                                {"job": retry.job_name, "outcome": "lost"})
                    continue
                job_id, conclusion = found
                outcome = store.outcome_of(conclusion)
                if store.settle(db, retry.id, store.DONE, outcome, job_id, now):
                    for alert_id in _shown_in(db, retry):
                        settled.setdefault(alert_id, []).append(
                            {"job": retry.job_name, "outcome": outcome})
            for alert_id, results in settled.items():
                alert_store.add_event(db, alert_id, "retry_result", now, results=results)
                alert_store.bump_version(db, alert_id)
        changed.update(settled)

    def register(self, scheduler: Scheduler) -> None:
        if self.github_token:
            scheduler.every(NAME, TICK_SECONDS, self.advance)


def _shown_in(db: sqlite_utils.Database, retry: Retry) -> list[int]:
    """The alerts that show this retry: the one it was asked from, else (an automatic
    retry planned before any alert) those whose job spans its commit. Resolved ones too,
    as for a retry asked from an alert: a passing rerun is often what resolved it."""
    if retry.alert_id is not None:
        return [retry.alert_id]
    return store.alerts_showing(db, retry.repo, retry.job_key, retry.sha)


def _touch(db: sqlite_utils.Database, retry: Retry, changed: set[int]) -> None:
    """The retry's state changed: the alerts showing it are redrawn."""
    for alert_id in _shown_in(db, retry):
        alert_store.bump_version(db, alert_id)
        changed.add(alert_id)


def failed_runs(db: sqlite_utils.Database, repo: str,
                alert_id: int) -> tuple[list[JobResult], dict[int, str]]:
    """The final failed run of each failed shard at each failing job's newest failing commit,
    and the job key of each (by job id)."""
    runs: list[JobResult] = []
    key_of: dict[int, str] = {}
    for member in alert_store.members(db, alert_id):
        if member.recovered:
            continue
        sha = member.newest_failing.sha
        verdict = cell_verdict(results_store.results_for_cell(db, repo, member.job_key, sha))
        for shard in verdict.shards:
            if shard.status is CellStatus.FAILURE and shard.failed_runs:
                run = shard.failed_runs[0]
                runs.append(run)
                key_of[run.job_id] = member.job_key
    return runs, key_of
