"""The one ingest path: every source (webhooks, pollers, replay) feeds commits and results here.

Each call runs in one write transaction: raw facts are stored, the touched cells are
recomputed, and the alerts brought up to date with them (``alerting.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from bot.domain.alerts import TooOld
from bot.domain.cells import FAILED, is_failed_run
from bot.domain.failure_classes import FailureRule, classify, rules_for
from bot.domain.failure_lines import from_reported
from bot.domain.jobkey import job_key as make_job_key
from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.domain.signatures import signature
from bot.ingest.alerting import update_alerts
from bot.store import evidence as evidence_store
from bot.store import history
from bot.store import results as results_store
from bot.store.db import Store

log = logging.getLogger(__name__)

# A push whose parent has not arrived after this long is placed at the head anyway: its
# parent's delivery was lost for good and no HUD page or commits listing filled the gap.
PUSH_WAIT = timedelta(minutes=10)
JOBS_REMEMBERED = 10_000  # job names whose routes and key are remembered (then forgotten)
MISSING = object()


@dataclass(frozen=True, slots=True)
class Commits:
    """Commits for trunk order, oldest first: a push (``after`` is its ``before``) or a
    listing of consecutive commits (HUD, the commits API) when ``after`` is None."""

    repo: str
    branch: str
    commits: tuple[Commit, ...]
    after: str | None = None


Fact = Commits | JobResult


@dataclass
class IngestReport:
    """What one ingest call changed; the Slack side wakes up for ``alerts``."""

    results_stored: int = 0
    commits_placed: int = 0
    alerts: set[int] = field(default_factory=set)
    ignored: int = 0
    too_old: list[TooOld] = field(default_factory=list)  # met the threshold, but long ago

    def merge(self, other: IngestReport) -> None:
        self.results_stored += other.results_stored
        self.commits_placed += other.commits_placed
        self.alerts |= other.alerts
        self.ignored += other.ignored
        self.too_old += other.too_old


class Ingestor:
    """Turns commits and job results into trunk order, cells, streaks and alert changes."""

    def __init__(
        self,
        store: Store,
        routes: Sequence[Route],
        now: Callable[[], datetime],
        on_change: Callable[[set[int]], None] | None = None,
        on_too_old: Callable[[list[TooOld]], None] | None = None,
        read_logs: bool = False,
    ) -> None:
        """``read_logs``: queue each failed job that came without lines for the log reader
        (``bot.ingest.evidence``); set when a ``GITHUB_TOKEN`` can read the logs."""
        self.store = store
        self.routes = tuple(routes)
        self.now = now
        self.on_change = on_change
        self.on_too_old = on_too_old
        self.read_logs = read_logs
        self._jobs: dict[tuple[str, str, str], tuple[frozenset[str], str] | None] = {}
        self._infra: dict[tuple[str, str, str], bool] = {}

    # --- what is watched ------------------------------------------------------------------

    def branches(self, repo: str) -> set[str]:
        return {r.branch for r in self.routes if r.repo == repo}

    def watches_commits(self, repo: str, branch: str | None) -> bool:
        return branch is not None and branch in self.branches(repo)

    def routes_for(self, repo: str, branch: str, workflow: str, job_name: str) -> list[Route]:
        return [
            r for r in self.routes
            if r.repo == repo and r.branch == branch and r.watches_job(workflow, job_name)
        ]

    def watches_result(self, result: JobResult) -> bool:
        """A watched job that ran on a watched branch, on a ref naming its own commit, or at
        a commit known to be on a watched branch (placed, or waiting to be placed).

        Restarts and bisect probes run on other refs (``trunk/{sha}`` tags); they are kept
        even when they arrive before the push that places their commit, and counted once
        it is placed. Pull-request runs of the same workflows are not kept.
        """
        return self._watched_key(result) is not None

    def _watched_key(self, result: JobResult) -> str | None:
        """The job key of a result ``watches_result`` keeps, else None."""
        job = self._job(result.repo, result.workflow, result.job_name)
        if job is None:
            return None
        branches, key = job
        ref = result.branch
        if ref is None or ref in branches or result.sha in ref:
            return key
        db = self.store.db
        known = any(history.get_commit(db, result.repo, branch, result.sha) is not None
                    or history.is_waiting(db, result.repo, branch, result.sha)
                    for branch in branches)
        return key if known else None

    def _job(self, repo: str, workflow: str, job_name: str) -> tuple[frozenset[str], str] | None:
        """The branches a job is watched on and its key, or None when no route watches it.

        Remembered per name: a batch has thousands of runs of a few hundred jobs, and the
        routes' patterns are regular expressions.
        """
        ident = (repo, workflow, job_name)
        if ident in self._jobs:
            return self._jobs[ident]
        branches = frozenset(r.branch for r in self.routes
                             if r.repo == repo and r.watches_job(workflow, job_name))
        found = (branches, make_job_key(workflow, job_name)) if branches else None
        if len(self._jobs) >= JOBS_REMEMBERED:
            self._jobs.clear()
        self._jobs[ident] = found
        return found

    def _counts_infra(self, repo: str, branch: str, key: str) -> bool:
        """Whether a route of the job counts infrastructure failures (remembered per key)."""
        ident = (repo, branch, key)
        found = self._infra.get(ident)
        if found is None:
            workflow, _, job_name = key.partition(" / ")
            found = any(r.infra_failures_alert
                        for r in self.routes_for(repo, branch, workflow, job_name))
            if len(self._infra) >= JOBS_REMEMBERED:
                self._infra.clear()
            self._infra[ident] = found
        return found

    # --- entry points ---------------------------------------------------------------------

    def commits(self, repo: str, branch: str, commits: Sequence[Commit], *,
                after: str | None = None) -> IngestReport:
        """Record commits (oldest first) and settle results that were waiting for them."""
        return self.ingest([Commits(repo, branch, tuple(commits), after)])

    def results(self, results: Iterable[JobResult]) -> IngestReport:
        """Record job attempts."""
        return self.ingest(results)

    def result(self, result: JobResult) -> IngestReport:
        return self.ingest([result])

    def ingest(self, facts: Iterable[Fact],
               interned: results_store.Interned | None = None) -> IngestReport:
        """Record a batch of commits and results in one transaction, then judge it once.

        Commits are placed in the order given; the runs are stored together (one read of
        what is stored for their job ids, one write of what changed), every cell they or
        the placed commits touch is recomputed once, and the alerts are brought up to date
        once (``alerting.py``). The rules are a function of the facts, so one batch gives
        the same cells, streaks and alerts as the same facts one at a time, in any order.
        ``interned``: string ids a caller keeps across batches on this thread (replay); a
        batch that fails rolls back the ids it made, so they are forgotten here.
        """
        try:
            return self._record_and_judge(facts, interned)
        except BaseException:
            if interned is not None:
                interned.forget()
            raise

    def _record_and_judge(self, facts: Iterable[Fact],
                          interned: results_store.Interned | None) -> IngestReport:
        report = IngestReport()
        with self.store.transaction() as db:
            now = self.now()
            placed: dict[tuple[str, str], list[str]] = {}
            runs: list[tuple[JobResult, str]] = []
            jobs = self._jobs
            for fact in facts:
                if isinstance(fact, Commits):
                    if self.watches_commits(fact.repo, fact.branch):
                        placed.setdefault((fact.repo, fact.branch), []).extend(
                            self._place(db, fact, now))
                    else:
                        report.ignored += 1
                else:
                    job = jobs.get((fact.repo, fact.workflow, fact.job_name), MISSING)
                    ref = fact.branch
                    if job is not MISSING and job is not None and ref in job[0]:
                        runs.append((fact, job[1]))  # the usual run: on a watched branch
                        continue
                    key = self._watched_key(fact)
                    if key is None:
                        report.ignored += 1
                    else:
                        runs.append((fact, key))
            interned = interned or results_store.Interned(db)
            recorded = results_store.record_batch(db, runs, interned)
            stored = recorded.changed
            report.results_stored = len(stored)
            # the cells to recompute: those of the runs stored, and those of the runs that
            # waited for the commits placed
            known: dict[tuple[str, tuple[str, str]], list[JobResult]] = {}
            for result, key in stored:
                cell_runs = known.get(ident := (result.repo, (key, result.sha)))
                if cell_runs is None:
                    known[ident] = [result]
                else:
                    cell_runs.append(result)
                if result.conclusion in FAILED and is_failed_run(result):
                    self._failure(db, result, key, now)
            if stored or placed:
                for repo, branch in sorted({(r.repo, r.branch) for r in self.routes}):
                    placed.setdefault((repo, branch), []).extend(
                        history.place_stale_waiting(db, repo, branch, now - PUSH_WAIT))
            report.commits_placed = sum(len(shas) for shas in placed.values())
            cells: dict[tuple[str, str], set[tuple[str, str]]] = {}
            for repo in {repo for repo, _ in known}:
                mine = {cell for r, cell in known if r == repo}
                for branch in sorted(self.branches(repo)):
                    cells.setdefault((repo, branch), set()).update(mine)
            for (repo, branch), shas in placed.items():
                # a commit whose every run came in this batch has its cells listed already
                waited = [sha for sha in shas if sha not in recorded.new_commits]
                at = results_store.job_keys_at(db, repo, waited, interned) if waited else {}
                for sha, keys in at.items():
                    cells.setdefault((repo, branch), set()).update((key, sha) for key in keys)
            by_cell = {cell: runs for (_, cell), runs in known.items()}
            touched: dict[tuple[str, str, str], set[int]] = {}
            starts: set[tuple[str, str, str]] = set()
            for (repo, branch), wanted in sorted(cells.items()):
                fresh = set(placed.get((repo, branch), ())) | recorded.first_named
                self._refresh(db, repo, branch, wanted, touched, starts, interned, by_cell,
                              recorded.new_commits, fresh)
            self._evaluate(db, touched, starts, now, report)
        self._notify(report)
        return report

    # --- internals ------------------------------------------------------------------------

    def _place(self, db: sqlite_utils.Database, fact: Commits, now: datetime) -> list[str]:
        after = fact.after
        if after is not None and not after.strip("0"):
            after = None  # a push that created the branch has no parent
        return history.place_commits(db, fact.repo, fact.branch, fact.commits, after=after,
                                     now=now)

    def _refresh(self, db: sqlite_utils.Database, repo: str, branch: str,
                 cells: set[tuple[str, str]],
                 touched: dict[tuple[str, str, str], set[int]],
                 starts: set[tuple[str, str, str]],
                 interned: results_store.Interned | None = None,
                 known: Mapping[tuple[str, str], Sequence[JobResult]] | None = None,
                 new_commits: Collection[str] = (), fresh: Collection[str] = ()) -> None:
        counts = {key: self._counts_infra(repo, branch, key) for key in {k for k, _ in cells}}
        for change in history.refresh_cells(db, repo, branch, cells, counts.__getitem__,
                                            interned, known, new_commits, fresh):
            ident = (repo, branch, change.key)
            touched.setdefault(ident, set()).add(change.cell.position)
            if change.may_start_a_streak:
                starts.add(ident)

    def failure_rules(self, repo: str, workflow: str, job_name: str) -> tuple[FailureRule, ...]:
        """The failure-class table for a job: its routes' own rules, then the shipped ones."""
        extra = [rule for route in self.routes if route.repo == repo
                 and route.watches_job(workflow, job_name) for rule in route.failure_rules]
        return rules_for(tuple(dict.fromkeys(extra)))

    def _failure(self, db: sqlite_utils.Database, result: JobResult, key: str,
                 now: datetime) -> None:
        """A failed run's evidence: the lines its source reported, classified now, or its
        log queued for the reader. ``startup_failure`` needs no log: nothing ran."""
        lines = result.failure_lines
        if lines or result.conclusion == "startup_failure":
            found = from_reported(lines)
            rules = self.failure_rules(result.repo, result.workflow, result.job_name)
            classification = classify(lines, found, result.conclusion, rules)
            evidence_store.record(db, result, key, found, classification,
                                  signature(found, classification), evidence_store.REPORTED,
                                  now)
        elif self.read_logs:
            evidence_store.want_log(db, result, key, now)

    def evidence_changed(self, repo: str, sha: str, key: str) -> IngestReport:
        """A failed run at ``sha`` was classified after it was stored: recompute its cell
        (an infra failure may stop counting) and bring the alerts up to date."""
        report = IngestReport()
        with self.store.transaction() as db:
            now = self.now()
            touched: dict[tuple[str, str, str], set[int]] = {}
            starts: set[tuple[str, str, str]] = set()
            for branch in self.branches(repo):
                self._refresh(db, repo, branch, {(key, sha)}, touched, starts)
            self._evaluate(db, touched, starts, now, report)
        self._notify(report)
        return report

    def changed_files(self, repo: str, changes: Iterable[tuple[str, Sequence[str], str]],
                      source: str) -> None:
        """Record what commits touched: ``(sha, paths, message)``, from a push or the API."""
        with self.store.transaction() as db:
            now = self.now()
            for sha, paths, message in changes:
                evidence_store.record_files(db, repo, sha, paths, message or None, source, now)

    def _evaluate(self, db: sqlite_utils.Database,
                  touched: dict[tuple[str, str, str], set[int]],
                  starts: set[tuple[str, str, str]], now: datetime,
                  report: IngestReport) -> None:
        """Bring the alerts up to date once, after the whole batch is stored.

        The rules are a function of the facts (``ingest/alerting.py``), so deciding once
        per batch gives what deciding after every result would, and costs less. ``starts``
        are the jobs whose changes may start or join a streak; the others matter only to
        jobs already in an alert.
        """
        if not touched:
            return
        changes = update_alerts(db, self.routes, touched, now, starts)
        report.alerts |= changes.alerts
        report.too_old += changes.too_old

    def _notify(self, report: IngestReport) -> None:
        if report.alerts and self.on_change is not None:
            try:
                self.on_change(set(report.alerts))
            except Exception:  # a wake-up failure must never undo a stored result
                log.exception("alert change listener failed")
        if report.too_old and self.on_too_old is not None:
            try:
                self.on_too_old(list(report.too_old))
            except Exception:  # telling is best effort, the result is stored
                log.exception("too-old streak listener failed")
