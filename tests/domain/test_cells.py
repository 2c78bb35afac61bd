"""Merging shards and attempts of one job key on one commit into a cell."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.cells import (
    RunClass,
    cell_status,
    cell_time,
    cell_verdict,
    run_class,
    shard_total,
    shard_verdict,
)
from bot.domain.model import CellStatus, JobResult

T0 = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)
_ids = count(1000)


def shard(i: int, n: int = 3, config: str = "inductor_huggingface") -> str:
    return f"cuda12.8-py3.10-gcc9-sm86 / test ({config}, {i}, {n}, linux.g5.4xlarge.nvidia.gpu)"


def run(
    conclusion: str | None,
    name: str = "cuda12.8 / test (inductor_timm)",
    *,
    attempt: int = 1,
    job_id: int | None = None,
    status: str | None = None,
    completed_at: datetime | None = None,
) -> JobResult:
    """One attempt; ``conclusion`` None or an unfinished status word means not completed."""
    unfinished = conclusion in (None, "queued", "in_progress", "pending", "waiting")
    return JobResult(
        repo="pytorch/pytorch",
        sha="a" * 40,
        workflow="inductor",
        job_name=name,
        job_id=next(_ids) if job_id is None else job_id,
        status=status or (conclusion if unfinished and conclusion else "completed"),
        conclusion=None if unfinished else conclusion,
        attempt=attempt,
        completed_at=completed_at,
    )


@pytest.mark.parametrize(
    ("conclusion", "expected"),
    [
        ("success", CellStatus.SUCCESS),
        ("failure", CellStatus.FAILURE),
        ("timed_out", CellStatus.FAILURE),
        ("startup_failure", CellStatus.FAILURE),
        ("cancelled", CellStatus.NONE),
        ("skipped", CellStatus.NONE),
        ("neutral", CellStatus.NONE),
        ("flaky", CellStatus.FLAKY),
        ("queued", CellStatus.PENDING),
        ("in_progress", CellStatus.PENDING),
        ("FAILURE", CellStatus.FAILURE),
    ],
)
def test_single_attempt(conclusion: str, expected: CellStatus) -> None:
    assert cell_status([run(conclusion)]) is expected


def test_no_results_is_no_signal() -> None:
    assert cell_status([]) is CellStatus.NONE
    assert not CellStatus.NONE.has_signal and not CellStatus.PENDING.has_signal


def test_signal_and_pass_properties() -> None:
    assert {s for s in CellStatus if s.has_signal} == {
        CellStatus.FAILURE, CellStatus.FLAKY, CellStatus.SUCCESS}
    assert {s for s in CellStatus if s.is_pass} == {CellStatus.FLAKY, CellStatus.SUCCESS}


def test_conclusion_of_an_unfinished_attempt_is_not_trusted() -> None:
    # GitHub sends conclusion null until the end; a stray conclusion on an in_progress
    # attempt must not count as a result
    assert run_class(run("failure", status="in_progress")) is RunClass.PENDING
    assert run_class(run("", status="completed")) is RunClass.PENDING


def test_failure_and_pass_in_either_order_is_flaky() -> None:
    """HUD: the verdict is a function of the set of conclusions, not of which ran last."""
    assert cell_status([run("failure", attempt=1), run("success", attempt=2)]) is CellStatus.FLAKY
    assert cell_status([run("success", attempt=1), run("failure", attempt=2)]) is CellStatus.FLAKY


def test_a_restart_on_another_run_counts_like_an_attempt() -> None:
    # a re-dispatch at the same commit starts a new run: attempt 1 again, newer job id
    assert cell_status([run("success", job_id=10), run("failure", job_id=20)]) is CellStatus.FLAKY
    assert cell_status([run("failure", job_id=10, attempt=2),
                        run("success", job_id=20)]) is CellStatus.FLAKY


def test_cancelled_rerun_keeps_the_failure() -> None:
    assert cell_status([run("failure", attempt=1), run("cancelled", attempt=2)]) is (
        CellStatus.FAILURE)


def test_a_finished_result_outranks_a_rerun_still_running() -> None:
    assert cell_status([run("failure", attempt=1), run("in_progress", attempt=2)]) is (
        CellStatus.FAILURE)
    assert cell_status([run("success", attempt=1), run("queued", attempt=2)]) is (
        CellStatus.SUCCESS)
    assert cell_status([run("cancelled", attempt=1), run("in_progress", attempt=2)]) is (
        CellStatus.PENDING)


def test_flaky_verdict_keeps_the_failed_runs_linked() -> None:
    failed = run("failure", job_id=7)
    passed = run("success", job_id=9)
    verdict = cell_verdict([passed, failed])
    assert verdict.status is CellStatus.FLAKY
    (shard_,) = verdict.shards
    assert shard_.shown is passed and shard_.failed_runs == (failed,)
    assert verdict.flaky_runs == (failed,)
    # a cancelled run is no failure evidence: success + cancelled is a plain success
    assert cell_verdict([passed, run("cancelled")]).status is CellStatus.SUCCESS


def test_shown_run_is_the_newest_of_the_best_class() -> None:
    older, newer = run("success", job_id=9), run("success", job_id=10)
    assert shard_verdict("s", [newer, older]).shown is newer
    assert shard_verdict("s", [older, newer]).shown is newer


def test_any_failed_shard_fails_the_cell() -> None:
    results = [run("success", shard(1)), run("failure", shard(2)), run("in_progress", shard(3))]
    assert cell_status(results) is CellStatus.FAILURE
    assert [r.conclusion for r in cell_verdict(results).failed_runs] == ["failure"]


def test_flaky_shard_with_passing_siblings_is_flaky() -> None:
    results = [
        run("success", shard(1)),
        run("failure", shard(2), attempt=1),
        run("success", shard(2), attempt=2),
        run("success", shard(3)),
    ]
    assert cell_status(results) is CellStatus.FLAKY


def test_flaky_shard_with_unfinished_or_unreported_siblings_is_pending() -> None:
    """A rerun that passed must not paint the cell green while a sibling may still fail."""
    flaky = [run("failure", shard(2), attempt=1), run("success", shard(2), attempt=2)]
    assert cell_status([*flaky, run("success", shard(1))]) is CellStatus.PENDING  # 3 unreported
    assert cell_status([*flaky, run("success", shard(1)),
                        run("in_progress", shard(3))]) is CellStatus.PENDING
    assert cell_status([*flaky, run("success", shard(1)),
                        run("failure", shard(3))]) is CellStatus.FAILURE


def test_unfinished_shard_without_failure_is_pending() -> None:
    results = [run("success", shard(1)), run("success", shard(2)), run("queued", shard(3))]
    assert cell_status(results) is CellStatus.PENDING


def test_all_shards_pass_is_success() -> None:
    assert cell_status([run("success", shard(i)) for i in (1, 2, 3)]) is CellStatus.SUCCESS


def test_shards_that_have_not_reported_make_the_cell_pending() -> None:
    # the deliberate refinement: 2 of 3 shards green is not a green cell
    verdict = cell_verdict([run("success", shard(1)), run("success", shard(3))])
    assert verdict.status is CellStatus.PENDING and verdict.missing_shards == 1


def test_missing_shards_do_not_hide_a_failure() -> None:
    assert cell_status([run("failure", shard(2))]) is CellStatus.FAILURE


def test_no_signal_shard_among_passing_ones_is_success() -> None:
    results = [run("success", shard(1)), run("cancelled", shard(2)), run("success", shard(3))]
    assert cell_status(results) is CellStatus.SUCCESS


def test_only_no_signal_shards_is_no_signal() -> None:
    results = [run("cancelled", shard(1)), run("skipped", shard(2)), run("neutral", shard(3))]
    assert cell_status(results) is CellStatus.NONE


@pytest.mark.parametrize(
    ("name", "total"),
    [
        (shard(2, 3), 3),
        ("cuda12.8 / test (inductor_torchbench, 1, 2, linux.g5.4xlarge.nvidia.gpu)", 2),
        ("cuda12.8 / test (inductor, 1, 1, linux.g5)", 1),
        ("cuda12.8 / test (dynamo_eager)", None),
        ("cuda12.8 / build", None),
        ("build (cuda 12.8)", None),
    ],
)
def test_shard_total(name: str, total: int | None) -> None:
    assert shard_total(name) == total


def test_shard_verdict_ignores_no_signal_runs_beside_a_result() -> None:
    assert shard_verdict("s", [run("cancelled", attempt=1)]).status is CellStatus.NONE
    assert shard_verdict("s", [run("success", attempt=1),
                               run("skipped", attempt=2)]).status is CellStatus.SUCCESS
    assert shard_verdict("s", [run("skipped"), run("failure")]).status is CellStatus.FAILURE
    assert shard_verdict("s", [run("neutral"), run("skipped")]).status is CellStatus.NONE


def test_cell_time_is_latest_completion_else_commit_time() -> None:
    commit_time = T0 - timedelta(hours=2)
    results = [run("success", shard(1), completed_at=T0),
               run("failure", shard(2), completed_at=T0 + timedelta(minutes=5)),
               run("in_progress", shard(3))]
    assert cell_time(results, commit_time) == T0 + timedelta(minutes=5)
    assert cell_time([run("in_progress")], commit_time) == commit_time
    assert cell_time([], None) is None


# --- property: a cell does not depend on the order results are read in --------------------

_CONCLUSIONS = ["success", "failure", "timed_out", "cancelled", "skipped", "in_progress",
                "queued", "flaky", "startup_failure"]


@st.composite
def _cell_results(draw: st.DrawFn) -> list[JobResult]:
    shards = draw(st.integers(1, 3))
    results = []
    for i in range(1, shards + 1):
        if draw(st.booleans()) and i > 1:
            continue  # shard has not reported
        for attempt in range(1, draw(st.integers(1, 3)) + 1):
            results.append(run(draw(st.sampled_from(_CONCLUSIONS)), shard(i, shards),
                               attempt=attempt))
    return results


@given(_cell_results(), st.randoms(use_true_random=False))
def test_cell_is_independent_of_arrival_order(results: list[JobResult],
                                             rnd: random.Random) -> None:
    shuffled = list(results)
    rnd.shuffle(shuffled)
    assert cell_status(shuffled) is cell_status(results)


def _oracle_shard(attempts: list[JobResult]) -> str:
    """HUD's rule restated from its prose: the set of conclusions decides."""
    done = {a.conclusion for a in attempts if a.status == "completed" and a.conclusion}
    failed = done & {"failure", "timed_out", "startup_failure"}
    if done & {"success", "flaky"}:
        return "flaky" if failed or "flaky" in done else "success"
    if failed:
        return "failure"
    if any(a.status != "completed" for a in attempts):
        return "pending"
    return "none"


@given(_cell_results())
def test_cell_matches_the_rule_restated(results: list[JobResult]) -> None:
    by_shard: dict[str, list[JobResult]] = {}
    for r in results:
        by_shard.setdefault(r.job_name, []).append(r)
    shards = {_oracle_shard(attempts) for attempts in by_shard.values()}
    total = max((shard_total(name) or 0) for name in by_shard)
    if len(by_shard) < total:
        shards.add("pending")
    expected = next((s for s in ("failure", "pending", "flaky", "success") if s in shards), "none")
    assert cell_status(results).value == expected
