"""The one ingest path: every source (webhooks, pollers, replay) feeds commits and results here.

Each call runs in one write transaction: raw facts are stored, the touched cells are
recomputed, and the alerts brought up to date with them (``alerting.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlite_utils

from bot.domain.alerts import TooOld
from bot.domain.cells import is_failed_run
from bot.domain.failure_classes import FailureRule, classify, rules_for
from bot.domain.failure_lines import from_reported
from bot.domain.jobkey import job_key as make_job_key
from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.domain.signatures import signature
from bot.ingest.alerting import update_alerts
from bot.store import evidence as evidence_store
from bot.store import history
from bot.store.db import Store

log = logging.getLogger(__name__)

# A push whose parent has not arrived after this long is placed at the head anyway: its
# parent's delivery was lost for good and no HUD page or commits listing filled the gap.
PUSH_WAIT = timedelta(minutes=10)


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
        routes = [r for r in self.routes
                  if r.repo == result.repo and r.watches_job(result.workflow, result.job_name)]
        if not routes:
            return False
        ref = result.branch
        if ref is None or any(r.branch == ref for r in routes) or result.sha in ref:
            return True
        db = self.store.db
        return any(history.get_commit(db, result.repo, r.branch, result.sha) is not None
                   or history.is_waiting(db, result.repo, r.branch, result.sha)
                   for r in routes)

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

    def ingest(self, facts: Iterable[Fact]) -> IngestReport:
        """Record a batch of commits and results in one transaction, then judge it once.

        The alert rules are a function of the facts (``alerting.py``), so one batch gives
        the same cells, streaks and alerts as the same facts one at a time, in any order.
        """
        report = IngestReport()
        with self.store.transaction() as db:
            now = self.now()
            touched: dict[tuple[str, str, str], set[int]] = {}
            branches: set[tuple[str, str]] = set()
            for fact in facts:
                if isinstance(fact, Commits):
                    if self._commits(db, fact, now, report, touched):
                        branches.add((fact.repo, fact.branch))
                else:
                    self._result(db, fact, now, report, touched)
            if report.results_stored or branches:
                branches |= {(r.repo, r.branch) for r in self.routes}
            for repo, branch in sorted(branches):
                stale = history.place_stale_waiting(db, repo, branch, now - PUSH_WAIT)
                report.commits_placed += len(stale)
                self._settle(db, repo, branch, stale, touched)
            self._evaluate(db, touched, now, report)
        self._notify(report)
        return report

    # --- internals ------------------------------------------------------------------------

    def _commits(self, db: sqlite_utils.Database, fact: Commits, now: datetime,
                 report: IngestReport, touched: dict[tuple[str, str, str], set[int]]) -> bool:
        if not self.watches_commits(fact.repo, fact.branch):
            report.ignored += 1
            return False
        after = fact.after
        if after is not None and not after.strip("0"):
            after = None  # a push that created the branch has no parent
        placed = history.place_commits(db, fact.repo, fact.branch, fact.commits, after=after,
                                       now=now)
        report.commits_placed += len(placed)
        self._settle(db, fact.repo, fact.branch, placed, touched)
        return True

    def _result(self, db: sqlite_utils.Database, result: JobResult, now: datetime,
                report: IngestReport, touched: dict[tuple[str, str, str], set[int]]) -> None:
        if not self.watches_result(result):
            report.ignored += 1
            return
        key = make_job_key(result.workflow, result.job_name)
        if not history.record_result(db, result, key, now):
            return
        report.results_stored += 1
        if is_failed_run(result):
            self._failure(db, result, key, now)
        for branch in self.branches(result.repo):
            self._refresh(db, result.repo, branch, key, result.sha, touched)

    def _settle(self, db: sqlite_utils.Database, repo: str, branch: str, placed: list[str],
                touched: dict[tuple[str, str, str], set[int]]) -> None:
        """Newly placed commits: the results that waited for them now count."""
        for sha in placed:
            for key in history.job_keys_at(db, repo, sha):
                self._refresh(db, repo, branch, key, sha, touched)

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

    def _refresh(self, db: sqlite_utils.Database, repo: str, branch: str, key: str, sha: str,
                 touched: dict[tuple[str, str, str], set[int]]) -> None:
        workflow, _, job_name = key.partition(" / ")
        count_infra = any(r.infra_failures_alert
                          for r in self.routes_for(repo, branch, workflow, job_name))
        cell = history.refresh_cell(db, repo, branch, key, sha, count_infra=count_infra)
        if cell is not None:
            touched.setdefault((repo, branch, key), set()).add(cell.position)

    def evidence_changed(self, repo: str, sha: str, key: str) -> IngestReport:
        """A failed run at ``sha`` was classified after it was stored: recompute its cell
        (an infra failure may stop counting) and bring the alerts up to date."""
        report = IngestReport()
        with self.store.transaction() as db:
            now = self.now()
            touched: dict[tuple[str, str, str], set[int]] = {}
            for branch in self.branches(repo):
                self._refresh(db, repo, branch, key, sha, touched)
            self._evaluate(db, touched, now, report)
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
                  touched: dict[tuple[str, str, str], set[int]], now: datetime,
                  report: IngestReport) -> None:
        """Bring the alerts up to date once, after the whole batch is stored.

        The rules are a function of the facts (``ingest/alerting.py``), so deciding once
        per batch gives what deciding after every result would, and costs less.
        """
        if not touched:
            return
        changes = update_alerts(db, self.routes, touched, now)
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
