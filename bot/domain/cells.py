"""Merging the runs of one job key on one commit into a cell: per shard by HUD's rule, then shards.

Two levels, as HUD and the alert rule see a commit:

1. **Shard** (HUD's ``mergeCellRuns``): every run of one shard on one commit (re-run
   attempts, restarts on ``trunk/{sha}``, a periodic scheduled twice) is merged into one
   verdict that depends only on the *set* of conclusions, never on who issued a run or
   the order runs arrived in.
2. **Key**: the shards of one job key are merged: a failed shard fails the cell, a shard
   still running (or not reported yet) keeps it pending, a flaky shard makes it flaky.

The verdicts carry the runs behind them as plain data, so the failed run behind a
flaky pass stays linked (it is the evidence that the job is flaky).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from functools import lru_cache

from bot.domain.model import CellStatus, JobResult

# "failure" and "timed_out" are HUD's real failures; "startup_failure" (the workflow could
# not start) is one too for the alert rule (domain.md section 3), although HUD ranks it
# with the conclusions it does not know.
FAILED = frozenset({"failure", "timed_out", "startup_failure"})
PASSED = frozenset({"success"})
FLAKY = "flaky"  # HUD's own verdict for a shard that failed and passed
NO_SIGNAL = frozenset({"cancelled", "skipped", "neutral", "stale", "action_required"})
UNFINISHED = frozenset({"queued", "waiting", "in_progress", "pending", "requested"})

# "test (inductor_huggingface, 2, 3, linux.g5...)": shard 2 of 3
_SHARD = re.compile(r"\([^,()]+,\s*(\d+)\s*,\s*(\d+)\s*(?:,[^()]*)?\)\s*$")


class RunClass(IntEnum):
    """HUD's class ranking of one run (``classRank`` in ``mergeCellRuns``): lower wins."""

    SUCCESS = 0
    FAILURE = 1
    PENDING = 2  # queued or running: a finished result outranks it
    NEUTRAL = 3
    SKIPPED = 4
    CANCELLED = 5  # discarded whenever any other run exists
    OTHER = 6  # conclusions HUD does not rank (stale, action_required, ...)


_CLASS_OF = {
    "success": RunClass.SUCCESS, FLAKY: RunClass.SUCCESS,
    "failure": RunClass.FAILURE, "timed_out": RunClass.FAILURE,
    "startup_failure": RunClass.FAILURE,
    "neutral": RunClass.NEUTRAL, "skipped": RunClass.SKIPPED, "cancelled": RunClass.CANCELLED,
}


@lru_cache(maxsize=4096)
def shard_total(job_name: str) -> int | None:
    """How many shards the job name says the job has (None for unsharded names)."""
    match = _SHARD.search(job_name)
    return int(match.group(2)) if match else None


def run_class(result: JobResult) -> RunClass:
    """The class of one run on its own.

    A run that is not completed is pending whatever its conclusion says, because GitHub
    sends ``conclusion: null`` until the job ends; a completed run without a conclusion
    is pending too (HUD reads an empty conclusion as "not concluded").
    """
    conclusion = result.conclusion
    if result.status != "completed" or not conclusion:
        return RunClass.PENDING
    klass = _CLASS_OF.get(conclusion)
    return klass if klass is not None else _CLASS_OF.get(conclusion.lower(), RunClass.OTHER)


def is_failed_run(result: JobResult) -> bool:
    """A finished run that failed: the evidence a flaky pass keeps linked."""
    return run_class(result) is RunClass.FAILURE


@dataclass(frozen=True, slots=True)
class ShardVerdict:
    """One shard on one commit after merging all its runs.

    ``shown`` is the run HUD would show for the cell (best class, newest inside it).
    ``failed_runs`` are the shard's failed runs, newest first: on a flaky pass they are
    the runs that make it flaky; on a failure, the failures themselves. HUD's own
    ``flaky`` verdict (a page that merged the runs already) is flaky with no failed run
    known.
    """

    name: str
    status: CellStatus
    shown: JobResult
    failed_runs: tuple[JobResult, ...] = ()


def _newest_first(result: JobResult) -> tuple[int, str, str]:
    # HUD: newest inside a class by numeric job id; content breaks ties, so the choice
    # never depends on the order the runs were read in
    return (-result.job_id, result.conclusion or "", result.html_url or "")


def shard_verdict(name: str, runs: Iterable[JobResult]) -> ShardVerdict:
    """HUD's ``mergeCellRuns`` for the runs of one shard (at least one).

    1. success and failure in any order: a pass, marked flaky, the failed run kept;
    2. a cancelled run loses to any run that is not cancelled, and is no failure evidence;
    3. otherwise the best class wins: success, failure, pending (a finished result
       outranks a rerun still running), neutral, skipped, cancelled.
    """
    runs = list(runs)
    if len(runs) == 1:  # the common case: one run, shown as it is (HUD's rule 1)
        only = runs[0]
        klass = run_class(only)
        if klass is RunClass.SUCCESS:
            flaky = (only.conclusion or "").lower() == FLAKY
            return ShardVerdict(name, CellStatus.FLAKY if flaky else CellStatus.SUCCESS, only)
        if klass is RunClass.FAILURE:
            return ShardVerdict(name, CellStatus.FAILURE, only, (only,))
        status = CellStatus.PENDING if klass is RunClass.PENDING else CellStatus.NONE
        return ShardVerdict(name, status, only)
    runs.sort(key=_newest_first)
    if not runs:
        raise ValueError(f"shard {name!r} has no runs")
    considered = [r for r in runs if run_class(r) is not RunClass.CANCELLED] or runs
    shown = min(considered, key=run_class)  # min is stable: the newest of the best class
    failed = tuple(r for r in runs if is_failed_run(r))
    match run_class(shown):
        case RunClass.SUCCESS:
            flaky = bool(failed) or any((r.conclusion or "").lower() == FLAKY for r in runs
                                        if r.status == "completed")
            status = CellStatus.FLAKY if flaky else CellStatus.SUCCESS
        case RunClass.FAILURE:
            status = CellStatus.FAILURE
        case RunClass.PENDING:
            status = CellStatus.PENDING
        case _:
            status = CellStatus.NONE
    return ShardVerdict(name, status, shown, failed)


@dataclass(frozen=True, slots=True)
class CellVerdict:
    """One job key on one commit: the merged status and the shard verdicts behind it."""

    status: CellStatus
    shards: tuple[ShardVerdict, ...] = ()
    missing_shards: int = 0  # shards the names announce that have not reported at all

    @property
    def flaky_shards(self) -> tuple[ShardVerdict, ...]:
        return tuple(s for s in self.shards if s.status is CellStatus.FLAKY)

    @property
    def flaky_runs(self) -> tuple[JobResult, ...]:
        """The failed runs behind the flaky shards: what to link when showing flakiness."""
        return tuple(r for s in self.flaky_shards for r in s.failed_runs)

    @property
    def failed_runs(self) -> tuple[JobResult, ...]:
        """The failed runs of the failed shards (newest first per shard)."""
        return tuple(r for s in self.shards if s.status is CellStatus.FAILURE
                     for r in s.failed_runs)


_KEY_ORDER = (CellStatus.FAILURE, CellStatus.PENDING, CellStatus.FLAKY, CellStatus.SUCCESS)


def cell_verdict(results: Iterable[JobResult]) -> CellVerdict:
    """Merge every run of one job key on one commit (domain.md section 3).

    Each shard is merged by HUD's rule (``shard_verdict``); then any failed shard ->
    failure; else any unfinished (or unreported) shard -> pending (no signal yet); else
    any flaky shard -> flaky (a pass); else any success -> success; else no signal.
    Pending outranks flaky for the reason it outranks success: a sibling still running
    may fail, and a pass read too early resolves an ongoing breakage.
    """
    by_shard: dict[str, list[JobResult]] = {}
    for result in results:
        by_shard.setdefault(result.job_name, []).append(result)
    shards = tuple(shard_verdict(name, runs) for name, runs in sorted(by_shard.items()))
    missing = _missing_shards(by_shard)
    statuses = {s.status for s in shards}
    if missing:
        # a shard that has not reported at all is as unfinished as a queued one: without
        # this, the first shard to pass would paint the cell green while its siblings run
        statuses.add(CellStatus.PENDING)
    status = next((s for s in _KEY_ORDER if s in statuses), CellStatus.NONE)
    return CellVerdict(status, shards, missing)


@dataclass(frozen=True, slots=True)
class FlakySeen:
    """A shard that failed and passed at one commit: the failed run is the evidence.

    ``failed`` is None when HUD reported the shard flaky without listing its runs;
    ``passed`` is the run that passed (HUD's flaky verdict, for such a cell).
    """

    sha: str
    shard: str
    failed: JobResult | None
    passed: JobResult


def flaky_seen(results: Iterable[JobResult]) -> list[FlakySeen]:
    """Every flaky shard among one commit's runs of one job, failed run first-class.

    A failed cell can hold a flaky shard too (another shard failed for real): that is
    still evidence the job is flaky, which a reader of the alert should see.
    """
    out = []
    for shard in cell_verdict(results).flaky_shards:
        failed = shard.failed_runs[0] if shard.failed_runs else None
        out.append(FlakySeen(shard.shown.sha, shard.name, failed, shard.shown))
    return out


def cell_status(results: Iterable[JobResult]) -> CellStatus:
    """The status alone of ``cell_verdict``.

    Nearly every cell has one run per shard: that case takes the same rules without
    building the verdicts (recomputing a batch's cells is on the ingest path).
    """
    if type(results) is not list:
        results = list(results)
    names = {r.job_name for r in results}
    if len(names) != len(results):
        return cell_verdict(results).status
    passed = flaky = pending = False
    for run in results:
        conclusion = run.conclusion
        if run.status != "completed" or not conclusion:
            pending = True
            continue
        if conclusion == "success":  # nearly every run
            passed = True
            continue
        klass = _CLASS_OF.get(conclusion)
        if klass is None:
            klass = _CLASS_OF.get(conclusion.lower(), RunClass.OTHER)
        if klass is RunClass.FAILURE:
            return CellStatus.FAILURE
        if klass is RunClass.SUCCESS:
            if conclusion.lower() == FLAKY:
                flaky = True
            else:
                passed = True
    if pending or _missing_shards(names):
        return CellStatus.PENDING
    if flaky:
        return CellStatus.FLAKY
    return CellStatus.SUCCESS if passed else CellStatus.NONE


def _missing_shards(shards: Iterable[str]) -> int:
    """Shards the names announce that have not reported (names: those that did)."""
    shards = shards if isinstance(shards, set | frozenset) else set(shards)
    most = 0
    for name in shards:
        total = shard_total(name)
        if total is not None and total > most:
            most = total
    return max(0, most - len(shards))


def cell_time(results: Iterable[JobResult], commit_time: datetime | None) -> datetime | None:
    """When the cell's signal happened: the latest completion among its shards.

    Falls back to the commit time, which HUD data always has, so the alert's
    ``max_age`` check works for sources that carry no job timestamps.
    """
    times = [r.completed_at for r in results if r.completed_at is not None]
    return max(times) if times else commit_time
