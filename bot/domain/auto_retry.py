"""Automatic retries (``EVIDENCE.md`` section 6): which failure the bot reruns on its own, once,
and how a route's budget of automatic reruns is spent. Plain data in, a decision out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.cells import cell_verdict, shard_verdict
from bot.domain.model import CellStatus, JobResult, PlacedCell
from bot.domain.streak import Streak

AUTOMATIC = "automatic"  # who asked, in ``job_retries.requested_by``, for the bot's own retries
BUDGET_WINDOW = timedelta(hours=24)  # a route's budget counts the reruns of the last 24 h


def first_failure(streak: Streak, threshold: int, now: datetime,
                  max_age: timedelta) -> PlacedCell | None:
    """The commit whose failure is worth one automatic rerun, or None.

    It is the oldest failure of the job's *ongoing* streak, right after a known pass
    (success or flaky), while the streak is still shorter than the route's
    ``threshold`` (from there on an alert speaks, and people retry from it), and it
    happened within ``max_age`` (an older failure is history, not news). A job whose
    history starts failing has no known pass: its first failure is not known either.
    """
    cell = streak.first_failure
    if not streak.ongoing or cell is None or streak.last_green is None:
        return None
    if streak.length >= threshold:
        return None
    if cell.time is None or now - cell.time > max_age:
        return None
    return cell


@dataclass(frozen=True, slots=True)
class RunsToRetry:
    """What to do with a first failure's cell: rerun ``runs`` (one failed run per failed
    shard), ``wait`` for more facts, or neither (``reason`` says why)."""

    runs: tuple[JobResult, ...] = ()
    wait: bool = False
    reason: str = ""


def runs_to_retry(results: Sequence[JobResult], infra: frozenset[int],
                  reading: frozenset[int]) -> RunsToRetry:
    """The failed runs of one cell (one job key at one commit) to rerun automatically.

    ``infra``: job ids whose failure is classified infrastructure; ``reading``: job ids
    whose log is still being read (their class is not known yet).

    - Wait while a sibling shard has not finished (or not reported), or a failed run's
      log is still being read: the shards of a cell are rerun together, and a
      sibling that fails later would leave the cell failing.
    - A shard that already ran more than once at this commit was rerun by someone
      (a GitHub rerun, a restart): the cell is not rerun again.
    - Infrastructure failures are not rerun: by default they make no streak (nothing
      to save), and a route that counts them (``infra_failures_alert``) asked to see them.
    - A run without a run id (HUD data) is not rerun: the bot could not tell whether its
      workflow run has finished, and GitHub refuses reruns until it has.
    """
    verdict = cell_verdict(results)
    if verdict.status is not CellStatus.FAILURE:
        return RunsToRetry(reason=f"the cell is {verdict.status.value}")
    by_shard: dict[str, list[JobResult]] = {}
    for result in results:
        by_shard.setdefault(result.job_name, []).append(result)
    if verdict.missing_shards:
        return RunsToRetry(wait=True, reason="a shard has not reported yet")
    chosen: list[JobResult] = []
    reasons: list[str] = []
    for name, runs in sorted(by_shard.items()):
        shard = shard_verdict(name, runs)
        if shard.status is CellStatus.PENDING:
            return RunsToRetry(wait=True, reason=f"{name} has not finished")
        if shard.status is not CellStatus.FAILURE:
            continue
        if len(runs) > 1:
            return RunsToRetry(reason=f"{name} was rerun at this commit already")
        run = runs[0]
        if run.job_id in reading:
            return RunsToRetry(wait=True, reason=f"the log of {name} is being read")
        if run.job_id in infra:
            reasons.append(f"{name} failed for infrastructure reasons")
        elif run.run_id is None:
            reasons.append(f"{name} has no run id")
        else:
            chosen.append(run)
    if not chosen:
        return RunsToRetry(reason="; ".join(reasons) or "no failed run")
    return RunsToRetry(runs=tuple(chosen))


def budget_left(budget: int, used_at: Iterable[datetime], now: datetime) -> int:
    """Automatic reruns a route may still ask for: ``budget`` per rolling ``BUDGET_WINDOW``,
    less those asked for within it (``used_at``: when each was)."""
    used = sum(1 for at in used_at if now - BUDGET_WINDOW < at <= now)
    return max(budget - used, 0)


def affordable(cost: int, left: int) -> bool:
    """A cell is rerun whole or not at all: rerunning some of its failed shards leaves it
    failing, which spends budget and saves nothing."""
    return 0 < cost <= left
