"""Automatic retries: which failure qualifies (the first of the ongoing streak, after a known
pass, shorter than the threshold, recent), which of its runs are rerun, and the budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.auto_retry import (
    BUDGET_WINDOW,
    affordable,
    budget_left,
    first_failure,
    runs_to_retry,
)
from bot.domain.model import CellStatus, JobResult, PlacedCell
from bot.domain.streak import compute_streak

F, S, K, P, N = (CellStatus.FAILURE, CellStatus.SUCCESS, CellStatus.FLAKY, CellStatus.PENDING,
                 CellStatus.NONE)
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def cells(*statuses: CellStatus, age: timedelta = timedelta(hours=1)) -> list[PlacedCell]:
    """Cells newest first (the first status is at the highest position), ``age`` old."""
    top = len(statuses)
    return [PlacedCell(top - i, f"sha{top - i}", s, NOW - age) for i, s in enumerate(statuses)]


def pick(*statuses: CellStatus, threshold: int = 3, age: timedelta = timedelta(hours=1)
         ) -> str | None:
    cell = first_failure(compute_streak(cells(*statuses, age=age)), threshold, NOW, DAY)
    return None if cell is None else cell.sha


# --- which commit ---------------------------------------------------------------------------


def test_a_new_failure_after_a_pass_is_the_first_failure() -> None:
    assert pick(F, S) == "sha2"
    assert pick(F, K) == "sha2", "a flaky pass is a pass: the failure after it is new"
    assert pick(F, P, N, S) == "sha4", "cells without a signal are skipped, as streaks do"


def test_the_first_failure_of_a_streak_below_the_threshold_is_still_it() -> None:
    # results arrive late: the next commit may fail before the first failure was retried
    assert pick(F, F, S) == "sha2"
    assert pick(F, F, F, S) is None, "at the threshold the alert speaks, people retry"
    assert pick(F, F, S, threshold=2) is None


def test_no_first_failure_without_a_known_pass_or_an_ongoing_streak() -> None:
    assert pick(F) is None and pick(F, F) is None, "history starts failing: not known new"
    assert pick(S, F, S) is None, "the streak ended: nothing left to save"
    assert pick(S) is None and pick() is None and pick(P, N) is None


def test_an_old_failure_is_history() -> None:
    assert pick(F, S, age=timedelta(hours=23)) == "sha2"
    assert pick(F, S, age=timedelta(hours=25)) is None
    undated = [PlacedCell(2, "sha2", F, None), PlacedCell(1, "sha1", S, None)]
    assert first_failure(compute_streak(undated), 3, NOW, DAY) is None


statuses = st.lists(st.sampled_from([F, S, K, P, N]), max_size=12)


@given(statuses, st.integers(min_value=1, max_value=5))
def test_first_failure_matches_an_oracle(history: list[CellStatus], threshold: int) -> None:
    """Oracle, from scratch: the failure cell whose newer signal cells all fail, whose
    nearest older signal cell is a pass, with fewer than ``threshold`` failures from it
    to the newest commit."""
    walk = cells(*history)
    expected = None
    for i, cell in enumerate(walk):
        if cell.status is not F:
            continue
        newer = [c for c in walk[:i] if c.status.has_signal]
        older = [c for c in walk[i + 1:] if c.status.has_signal]
        if (all(c.status is F for c in newer) and older and older[0].status.is_pass
                and len(newer) + 1 < threshold):
            assert expected is None, "at most one cell qualifies"
            expected = cell
    assert first_failure(compute_streak(walk), threshold, NOW, DAY) == expected


# --- which runs -----------------------------------------------------------------------------


def run(shard: int, conclusion: str | None, job_id: int, *, total: int = 2,
        run_id: int | None = 7, status: str = "completed", attempt: int = 1) -> JobResult:
    return JobResult(repo="o/r", sha="sha2", workflow="inductor",
                     job_name=f"build / test (hf, {shard}, {total}, gpu)", job_id=job_id,
                     status=status, conclusion=conclusion, run_id=run_id, attempt=attempt)


NONE: frozenset[int] = frozenset()


def test_each_failed_shard_is_rerun_together() -> None:
    decided = runs_to_retry([run(1, "failure", 10), run(2, "success", 11)], NONE, NONE)
    assert [r.job_id for r in decided.runs] == [10] and not decided.wait
    both = runs_to_retry([run(1, "failure", 10), run(2, "timed_out", 11)], NONE, NONE)
    assert [r.job_id for r in both.runs] == [10, 11]


def test_wait_for_siblings_and_logs() -> None:
    running = runs_to_retry([run(1, "failure", 10), run(2, None, 11, status="in_progress")],
                            NONE, NONE)
    assert running.wait and not running.runs
    missing = runs_to_retry([run(1, "failure", 10)], NONE, NONE)
    assert missing.wait and "not reported" in missing.reason
    reading = runs_to_retry([run(1, "failure", 10), run(2, "success", 11)], NONE,
                            frozenset({10}))
    assert reading.wait and not reading.runs


def test_a_shard_rerun_already_is_not_rerun_again() -> None:
    twice = runs_to_retry([run(1, "failure", 10), run(1, "failure", 12, attempt=2),
                           run(2, "success", 11)], NONE, NONE)
    assert not twice.runs and not twice.wait and "rerun" in twice.reason
    pending = runs_to_retry([run(1, "failure", 10), run(1, None, 12, status="queued"),
                             run(2, "success", 11)], NONE, NONE)
    assert not pending.runs and not pending.wait


def test_infrastructure_and_runs_without_a_run_id_are_left_out() -> None:
    infra = runs_to_retry([run(1, "failure", 10), run(2, "success", 11)], frozenset({10}), NONE)
    assert not infra.runs and "infrastructure" in infra.reason
    mixed = runs_to_retry([run(1, "failure", 10), run(2, "failure", 11)], frozenset({10}), NONE)
    assert [r.job_id for r in mixed.runs] == [11]
    hud = runs_to_retry([run(1, "failure", 10, run_id=None), run(2, "success", 11)], NONE, NONE)
    assert not hud.runs and "run id" in hud.reason


def test_a_cell_that_is_not_failing_has_nothing_to_rerun() -> None:
    for results in ([run(1, "success", 10), run(2, "success", 11)],
                    [run(1, "failure", 10), run(1, "success", 12), run(2, "success", 11)], []):
        decided = runs_to_retry(results, NONE, NONE)
        assert not decided.runs and not decided.wait


# --- the budget -----------------------------------------------------------------------------


def test_budget_counts_the_last_24_hours() -> None:
    used = [NOW - timedelta(hours=h) for h in (1, 5, 23)]
    assert budget_left(5, used, NOW) == 2
    assert budget_left(5, used + [NOW - timedelta(hours=25)], NOW) == 2, "older ones expired"
    assert budget_left(2, used, NOW) == 0, "never below nothing"
    assert budget_left(3, [NOW - BUDGET_WINDOW], NOW) == 3, "exactly a window ago: expired"


def test_a_cell_is_paid_whole_or_not_at_all() -> None:
    assert affordable(2, 2) and affordable(1, 5)
    assert not affordable(3, 2) and not affordable(0, 5)


@given(st.integers(min_value=1, max_value=20),
       st.lists(st.integers(min_value=0, max_value=48 * 60), max_size=30))
def test_budget_matches_an_oracle(budget: int, minutes_ago: list[int]) -> None:
    used = [NOW - timedelta(minutes=m) for m in minutes_ago]
    recent = len([m for m in minutes_ago if m < 24 * 60])
    assert budget_left(budget, used, NOW) == max(0, budget - recent)
