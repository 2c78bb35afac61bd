"""The evidence one alert shows, read in one place: each job's key line, class, signature and
flaky-or-real judgement, and the suspects ranked with their reasons.

Reads ``job_evidence``, ``commit_files``, ``cells`` and the raw results; the rules are the
domain's (``real_or_flaky``, ``suspects``). Every view of an alert reads it from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import sqlite_utils

from bot.domain.cells import CellVerdict, cell_verdict
from bot.domain.failure_classes import Classification, FailureClass
from bot.domain.failure_lines import FailureLines
from bot.domain.model import CellStatus
from bot.domain.real_or_flaky import FailedRun, FailingCommit, JobEvidence, Judgement, judge
from bot.domain.suspects import Change, RankedSuspect, clues_from, rank
from bot.store import evidence as store
from bot.store import results as results_store
from bot.store.details import AlertDetail, JobDetail

FAILING_LOOKED_AT = 10  # newest failing commits of a streak the judgement reads
NEARBY_CELLS = 10  # cells before a streak searched for a pass on rerun
FLAKY_HISTORY = 20  # the job's newest flaky cells whose failed tests count as known flaky


@dataclass(frozen=True, slots=True)
class JobFacts:
    """What the evidence says about one job of an alert.

    ``headline``/``classification``/``signature``: the newest failing commit's first failed
    run with known evidence. ``pending``: a log of that commit is still to be read.
    ``tests_failed``: failed tests counted at that commit.
    """

    key: str
    headline: str | None
    classification: Classification | None
    signature: str | None
    judgement: Judgement
    tests_failed: int = 0
    pending: bool = False
    gone: bool = False

    @property
    def infra(self) -> bool:
        return self.judgement.verdict.value == "infra"


@dataclass(frozen=True, slots=True)
class RunFacts:
    """One failed run (a shard's attempt) at its job's newest failing commit.

    ``state``: the evidence row's state (``done``, ``wanted``, ``gone``, ``failed``), or
    ``none`` when nothing was recorded (no lines and no token to read the log).
    """

    key: str
    job_name: str
    job_id: int
    html_url: str | None
    state: str
    headline: str | None
    classification: Classification | None
    signature: str | None


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """Each job's facts (by job key), the failed runs of the still failing jobs at their
    newest failing commit, and the suspects, most likely first."""

    jobs: dict[str, JobFacts]
    runs: tuple[RunFacts, ...]
    ranking: tuple[RankedSuspect, ...]


def alert_evidence(db: sqlite_utils.Database, detail: AlertDetail, *,
                   code_area: Sequence[str] = (),
                   flaky_tests: Sequence[str] = ()) -> AlertFacts:
    """The evidence of ``detail``'s jobs and suspects (see the module docstring)."""
    patterns = [re.compile(p) for p in flaky_tests]
    jobs: dict[str, JobFacts] = {}
    runs: list[RunFacts] = []
    failures: list[FailureLines] = []
    for job in detail.jobs:
        facts, found = _job(db, detail, job, patterns)
        jobs[job.key] = facts
        failures += found
        if not job.recovered:
            runs += _newest_runs(db, detail.repo, job)
    runs += _bystanders(db, detail)
    changes = _changes(db, detail)
    ranking = tuple(rank(changes, clues_from(failures), code_area)) if changes else ()
    return AlertFacts(jobs, tuple(runs), ranking)


def _bystanders(db: sqlite_utils.Database, detail: AlertDetail) -> list[RunFacts]:
    """Infrastructure failures of the route's other jobs at the failing jobs' newest failing
    commits: they made no streak (so they are not members), but a sheriff should see them."""
    failing = [j for j in detail.jobs if not j.recovered]
    members = {j.key for j in detail.jobs}
    workflows = {j.key.split(" / ", 1)[0] for j in detail.jobs}
    shas = sorted({j.newest_failing_sha for j in failing})
    newest: dict[tuple[str, str, str], RunFacts] = {}  # a rerun that failed again replaces
    for e, url in store.infra_at(db, detail.repo, shas):
        if e.job_key in members or e.job_key.split(" / ", 1)[0] not in workflows:
            continue
        newest[(e.sha, e.job_key, e.job_name)] = RunFacts(
            e.job_key, e.job_name, e.job_id, url, e.state,
            e.classification.line if e.classification else None, e.classification, e.signature)
    return list(newest.values())


def _newest_runs(db: sqlite_utils.Database, repo: str, job: JobDetail) -> list[RunFacts]:
    """The final failed run of each failed shard at the job's newest failing commit."""
    verdict, by_id = _failed_runs(db, repo, job.key, job.newest_failing_sha)
    runs: list[RunFacts] = []
    for shard in verdict.shards:
        if shard.status is not CellStatus.FAILURE or not shard.failed_runs:
            continue
        run = shard.failed_runs[0]  # newest first
        evidence = by_id.get(run.job_id)
        headline = evidence.found.headline if evidence is not None else None
        c = evidence.classification if evidence is not None else None
        text = headline.text if headline is not None else (c.line if c is not None else None)
        runs.append(RunFacts(job.key, run.job_name, run.job_id, run.html_url,
                             evidence.state if evidence is not None else "none",
                             text or (run.failure_lines[0] if run.failure_lines else None),
                             c, evidence.signature if evidence is not None else None))
    return runs


def _failed_runs(db: sqlite_utils.Database, repo: str, key: str,
                 sha: str) -> tuple[CellVerdict, dict[int, store.StoredEvidence]]:
    results = results_store.results_for_cell(db, repo, key, sha)
    verdict = cell_verdict(results)
    ids = [r.job_id for s in verdict.shards for r in s.failed_runs]
    return verdict, store.of_jobs(db, repo, ids)


def _run(evidence: store.StoredEvidence | None) -> FailedRun:
    if evidence is None or evidence.classification is None:
        return FailedRun(None, None)
    c = evidence.classification
    return FailedRun(evidence.signature, c.kind, evidence.found.tests, c.rule)


def _job(db: sqlite_utils.Database, detail: AlertDetail, job: JobDetail,
         flaky_patterns: list[re.Pattern[str]]) -> tuple[JobFacts, list[FailureLines]]:
    repo, branch = detail.repo, detail.branch
    failing: list[FailingCommit] = []
    newest: store.StoredEvidence | None = None
    pending = gone = False
    found: list[FailureLines] = []
    tests: set[str] = set()
    for sha in _streak_shas(db, repo, branch, job):
        verdict, by_id = _failed_runs(db, repo, job.key, sha)
        if not any(s.status is CellStatus.FAILURE for s in verdict.shards):
            continue  # a pass or no signal inside the range (a periodic job skipped it)
        runs: list[FailedRun] = []
        failed_again = False
        for shard in verdict.shards:
            if shard.status is not CellStatus.FAILURE:
                continue
            failed_again = failed_again or len(shard.failed_runs) > 1
            for run in shard.failed_runs:
                evidence = by_id.get(run.job_id)
                runs.append(_run(evidence))
                if evidence is not None and evidence.known:
                    found.append(evidence.found)
                    tests.update(evidence.found.tests)
                if sha == job.newest_failing_sha and evidence is not None:
                    pending = pending or evidence.state == store.WANTED
                    gone = gone or evidence.state in (store.GONE, store.FAILED)
                    if newest is None and evidence.known:
                        newest = evidence
        failing.append(FailingCommit(sha, tuple(runs),
                                     tuple(s.name for s in verdict.flaky_shards), failed_again))
    known_flaky = {t for t in tests if any(p.search(t) for p in flaky_patterns)}
    known_flaky |= _seen_flaky(db, repo, branch, job.key, tests)
    judgement = judge(JobEvidence(tuple(failing), _flaky_nearby(db, repo, branch, job),
                                  frozenset(known_flaky)))
    headline = newest.found.headline if newest is not None else None
    text = headline.text if headline is not None else (
        newest.classification.line if newest is not None and newest.classification else None)
    return JobFacts(
        key=job.key, headline=text or job.failure_line,
        classification=newest.classification if newest else None,
        signature=newest.signature if newest else None, judgement=judgement,
        tests_failed=newest.found.test_count if newest else 0,
        pending=pending and newest is None, gone=gone and newest is None,
    ), found[:FAILING_LOOKED_AT]


def _streak_shas(db: sqlite_utils.Database, repo: str, branch: str, job: JobDetail) -> list[str]:
    """The job's cells from its newest failure back to its first, newest first.

    Any status: a failure classified infra after the streak was recorded no longer
    counts as one in ``cells``, but its runs are still the evidence.
    """
    return [row[0] for row in db.execute(
        "SELECT c.sha FROM cells c WHERE c.repo = ? AND c.branch = ? AND c.job_key = ? "
        "AND c.position <= (SELECT position FROM commits WHERE "
        "repo = ? AND branch = ? AND sha = ?) AND c.position >= (SELECT position FROM commits "
        "WHERE repo = ? AND branch = ? AND sha = ?) ORDER BY c.position DESC LIMIT ?",
        [repo, branch, job.key, repo, branch, job.newest_failing_sha, repo, branch,
         job.first_failing_sha, FAILING_LOOKED_AT])]


def _flaky_nearby(db: sqlite_utils.Database, repo: str, branch: str,
                  job: JobDetail) -> tuple[str, ...]:
    """Commits just before the streak where the job passed only on a rerun, newest first."""
    rows = db.execute(
        "SELECT sha, status FROM cells WHERE repo = ? AND branch = ? AND job_key = ? "
        "AND position < (SELECT position FROM commits WHERE repo = ? AND branch = ? "
        "AND sha = ?) ORDER BY position DESC LIMIT ?",
        [repo, branch, job.key, repo, branch, job.first_failing_sha, NEARBY_CELLS]).fetchall()
    return tuple(sha for sha, status in rows if status == CellStatus.FLAKY.value)


def _seen_flaky(db: sqlite_utils.Database, repo: str, branch: str, key: str,
                tests: set[str]) -> set[str]:
    """The tests among ``tests`` that failed in a run behind one of the job's newest flaky
    cells (``FLAKY_HISTORY`` of them): seen failing and passing at one commit before.

    One indexed statement, whatever the length of the history (``store.flaky_cell_tests``).
    """
    if not tests:
        return set()
    return set(store.flaky_cell_tests(db, repo, branch, key, FLAKY_HISTORY)) & tests


def _changes(db: sqlite_utils.Database, detail: AlertDetail) -> list[Change]:
    shas = [c.sha for c in detail.suspects]
    files = store.files_of(db, detail.repo, shas)
    changes = []
    for commit in detail.suspects:
        known = files.get(commit.sha)
        changes.append(Change(commit.sha, commit.title, known.message if known else "",
                              known.files if known else None))
    return changes


def infra_cause(facts: JobFacts) -> str | None:
    """The infra rule behind a job's newest failure, when it is infra."""
    c = facts.classification
    return c.rule if c is not None and c.kind is FailureClass.INFRA else None
