"""Merging the shards and attempts of one job key on one commit into a single cell."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime

from bot.domain.model import CellStatus, JobResult

FAILED = frozenset({"failure", "timed_out", "startup_failure"})
PASSED = frozenset({"success"})
NO_SIGNAL = frozenset({"cancelled", "skipped", "neutral", "stale", "action_required"})
UNFINISHED = frozenset({"queued", "waiting", "in_progress", "pending", "requested"})

# "test (inductor_huggingface, 2, 3, linux.g5...)": shard 2 of 3
_SHARD = re.compile(r"\([^,()]+,\s*(\d+)\s*,\s*(\d+)\s*(?:,[^()]*)?\)\s*$")


def shard_total(job_name: str) -> int | None:
    """How many shards the job name says the job has (None for unsharded names)."""
    match = _SHARD.search(job_name)
    return int(match.group(2)) if match else None


def attempt_outcome(result: JobResult) -> CellStatus:
    """Classify one attempt on its own.

    An attempt that is not completed is pending whatever its conclusion says, because
    GitHub sends ``conclusion: null`` until the job ends. HUD reports ``flaky`` for a
    shard that already failed and passed, so it is flaky on its own.
    """
    if result.status != "completed":
        return CellStatus.PENDING
    conclusion = (result.conclusion or "").lower()
    if conclusion in FAILED:
        return CellStatus.FAILURE
    if conclusion in PASSED:
        return CellStatus.SUCCESS
    if conclusion == "flaky":
        return CellStatus.FLAKY
    return CellStatus.NONE


def attempt_order(result: JobResult) -> tuple[int, int]:
    """Attempts of one shard in the order they ran.

    ``run_attempt`` orders reruns inside a run; GitHub job ids grow monotonically, so
    they order attempts across separate runs (a re-dispatch at the same commit).
    """
    return (result.attempt, result.job_id)


def shard_status(attempts: Iterable[JobResult]) -> CellStatus:
    """Status of one shard: its final attempt decides, an earlier failure makes a pass flaky.

    Attempts without a signal (cancelled, skipped, neutral) are ignored, so a cancelled
    rerun does not erase the failure before it.
    """
    outcomes = [attempt_outcome(a) for a in sorted(attempts, key=attempt_order)]
    outcomes = [o for o in outcomes if o is not CellStatus.NONE]
    if not outcomes:
        return CellStatus.NONE
    final = outcomes[-1]
    if final is CellStatus.SUCCESS and CellStatus.FAILURE in outcomes[:-1]:
        return CellStatus.FLAKY
    return final


def cell_status(results: Iterable[JobResult]) -> CellStatus:
    """Merge every shard of one job key on one commit (domain.md section 3).

    Precedence: any failed shard -> failure; else any unfinished (or unreported) shard
    -> pending (no signal yet); else any flaky shard -> flaky (a pass); else any success
    -> success; else no signal. Pending outranks flaky for the reason it outranks
    success: a sibling still running may fail, and a pass read too early resolves an
    ongoing breakage (which then opens again as a second alert).
    """
    shards: dict[str, list[JobResult]] = {}
    for result in results:
        shards.setdefault(result.job_name, []).append(result)
    statuses = {shard_status(attempts) for attempts in shards.values()}
    if _missing_shards(shards):
        # a shard that has not reported at all is as unfinished as a queued one: without
        # this, the first shard to pass would paint the cell green while its siblings run
        statuses.add(CellStatus.PENDING)
    for status in (CellStatus.FAILURE, CellStatus.PENDING, CellStatus.FLAKY, CellStatus.SUCCESS):
        if status in statuses:
            return status
    return CellStatus.NONE


def _missing_shards(shards: dict[str, list[JobResult]]) -> bool:
    totals = [shard_total(name) for name in shards]
    expected = max((t for t in totals if t is not None), default=None)
    return expected is not None and len(shards) < expected


def cell_time(results: Iterable[JobResult], commit_time: datetime | None) -> datetime | None:
    """When the cell's signal happened: the latest completion among its shards.

    Falls back to the commit time, which HUD data always has, so the alert's
    ``max_age`` check works for sources that carry no job timestamps.
    """
    times = [r.completed_at for r in results if r.completed_at is not None]
    return max(times) if times else commit_time
