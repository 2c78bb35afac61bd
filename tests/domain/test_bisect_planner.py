"""Bisect planner: round bound, pre-existing results, flaky and untestable probes, budgets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.bisect.driver import BisectRun, ProbeResult, run_bisect
from bot.domain.bisect_planner import (
    MAX_K,
    BisectLimits,
    BisectState,
    Observation,
    Outcome,
    plan,
    round_bound,
)

PASS, FAIL, SKIP = Outcome.PASS, Outcome.FAIL, Outcome.INCONCLUSIVE
GOOD = "good"


def suspects(n: int) -> tuple[str, ...]:
    return tuple(f"c{i:03d}" for i in range(n))


def position(sha: str) -> int:
    """-1 for last_good, else the suspect's index."""
    return -1 if sha == GOOD else int(sha[1:])


def truth(culprit: int) -> Callable[[str], Outcome]:
    return lambda sha: FAIL if position(sha) >= culprit else PASS


def bisect(state: BisectState, oracle: Callable[[str], Outcome]) -> BisectRun:
    def probe_batch(shas: Sequence[str]) -> list[ProbeResult]:
        return [ProbeResult(sha, oracle(sha)) for sha in shas]

    return run_bisect(state, probe_batch)


def probed(run: BisectRun) -> list[str]:
    return [p.sha for r in run.rounds for p in r.probes]


# round_bound


@pytest.mark.parametrize(
    ("n", "k", "rounds"),
    [(0, 1, 0), (1, 1, 0), (2, 1, 1), (8, 1, 3), (9, 1, 4), (64, 3, 3), (65, 3, 4), (512, 7, 3)],
)
def test_round_bound_examples(n: int, k: int, rounds: int) -> None:
    assert round_bound(n, k) == rounds


@given(n=st.integers(2, 10**6), k=st.integers(1, MAX_K))
def test_round_bound_is_the_smallest_power_reaching_n(n: int, k: int) -> None:
    r = round_bound(n, k)
    assert (k + 1) ** (r - 1) < n <= (k + 1) ** r


# validation and trivial ranges


@pytest.mark.parametrize("k", [0, -1, MAX_K + 1, True])
def test_k_out_of_range_is_rejected(k: int) -> None:
    with pytest.raises(ValueError, match=f"k must be between 1 and {MAX_K}"):
        BisectState(GOOD, suspects(4), k=k)


def test_last_good_cannot_be_a_suspect() -> None:
    with pytest.raises(ValueError, match="cannot also be a suspect"):
        BisectState("c000", suspects(3))


def test_empty_range_fails_without_runs() -> None:
    result = plan(BisectState(GOOD, ()))
    assert (result.status, result.reason, result.to_test) == ("failed", "range empty", ())


def test_single_suspect_is_the_culprit_without_runs_when_not_confirming() -> None:
    result = plan(BisectState(GOOD, ("c000",), confirm_runs=0))
    assert (result.status, result.culprit, result.parent) == ("found", "c000", GOOD)


def test_single_suspect_confirmation_reruns_it_and_last_good() -> None:
    state = BisectState(GOOD, ("c000",), k=2)
    assert plan(state).to_test == ("c000", GOOD)
    run = bisect(state, truth(0))
    assert (run.plan.status, run.plan.culprit, run.runs) == ("found", "c000", 2)


def test_first_round_splits_into_k_plus_one_equal_parts() -> None:
    # 16 candidates, 3 probes: parts of 4, cut after positions 3, 7 and 11
    assert plan(BisectState(GOOD, suspects(16), k=3)).to_test == ("c003", "c007", "c011")


def test_probes_that_would_not_shrink_the_largest_part_are_not_spent() -> None:
    # 5 candidates: three probes leave a part of 2 (2+1+1+1), and so do two (1+2+2)
    assert plan(BisectState(GOOD, suspects(5), k=3)).to_test == ("c000", "c002")


# deterministic results: the round bound


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 600), k=st.integers(1, MAX_K))
def test_finds_planted_culprit_within_round_bound(data: st.DataObject, n: int, k: int) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    run = bisect(
        BisectState(GOOD, suspects(n), k=k, max_runs=10**6, confirm_runs=0), truth(culprit)
    )
    assert run.plan.status == "found"
    assert run.plan.culprit == f"c{culprit:03d}"
    assert len(run.rounds) <= round_bound(n, k)
    assert all(len(r.probes) <= k for r in run.rounds)
    assert len(set(probed(run))) == len(probed(run)), "a settled commit was run twice"


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(1, 300), k=st.integers(1, MAX_K))
def test_confirmation_costs_a_round_and_two_runs(data: st.DataObject, n: int, k: int) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    plain = bisect(
        BisectState(GOOD, suspects(n), k=k, max_runs=10**6, confirm_runs=0), truth(culprit)
    )
    confirmed = bisect(BisectState(GOOD, suspects(n), k=k, max_runs=10**6), truth(culprit))
    assert confirmed.plan.culprit == plain.plan.culprit == f"c{culprit:03d}"
    # both reruns share a round, unless one run per round forces them apart
    assert len(confirmed.rounds) <= round_bound(n, k) + (2 if k == 1 else 1)
    counts = Counter(probed(confirmed))
    parent = GOOD if culprit == 0 else f"c{culprit - 1:03d}"
    # last_good's pass and the last suspect's failure are premises: one run each suffices
    assert counts[parent] == (1 if parent == GOOD else 2), "the parent passed once more"
    assert counts[f"c{culprit:03d}"] == (1 if culprit == n - 1 else 2)
    assert confirmed.runs <= plain.runs + 2


# pre-existing results


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(2, 400), k=st.integers(1, MAX_K))
def test_existing_results_shrink_the_range_and_are_never_rerun(
    data: st.DataObject, n: int, k: int
) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    known = data.draw(st.sets(st.integers(0, n - 2), max_size=n), label="known")
    outcome = truth(culprit)
    observations = tuple(Observation(f"c{i:03d}", outcome(f"c{i:03d}")) for i in sorted(known))
    state = BisectState(
        GOOD, suspects(n), k=k, observations=observations, max_runs=10**6, confirm_runs=0
    )
    run = bisect(state, outcome)
    assert run.plan.culprit == f"c{culprit:03d}"
    lo = max((i for i in known if i < culprit), default=-1)
    hi = min((i for i in known if i >= culprit), default=n - 1)
    assert len(run.rounds) <= round_bound(hi - lo, k)
    assert not {position(sha) for sha in probed(run)} & known


def test_adjacent_existing_results_name_the_culprit_without_runs() -> None:
    observations = (Observation("c004", PASS), Observation("c005", FAIL))
    result = plan(BisectState(GOOD, suspects(12), observations=observations, confirm_runs=0))
    assert (result.status, result.culprit, result.parent) == ("found", "c005", "c004")


def test_results_outside_the_range_are_ignored() -> None:
    state = BisectState(GOOD, suspects(4), observations=(Observation("elsewhere", FAIL),))
    assert plan(state).candidates == suspects(4)


# runs in flight


def test_in_flight_commits_are_not_proposed_again_and_use_slots() -> None:
    state = BisectState(GOOD, suspects(16), k=3).started(["c007"])
    result = plan(state)
    assert result.status == "running"
    assert len(result.to_test) == 2
    assert "c007" not in result.to_test
    # the two new probes go one into each half the run in flight leaves
    assert sorted(position(s) < 7 for s in result.to_test) == [False, True]


def test_waits_when_every_slot_is_in_flight() -> None:
    state = BisectState(GOOD, suspects(16), k=2).started(["c005", "c010"])
    result = plan(state)
    assert (result.status, result.to_test) == ("running", ())


# budgets


def test_budget_spent_is_reported_instead_of_a_guess() -> None:
    run = bisect(BisectState(GOOD, suspects(64), k=1, max_runs=3), truth(40))
    assert run.plan.status == "failed"
    assert run.plan.reason == "budget spent: 3 of 3 runs"
    assert run.runs == 3
    assert "c040" in run.plan.candidates


def test_budget_caps_the_probes_of_a_round() -> None:
    state = BisectState(GOOD, suspects(64), k=7, max_runs=10, runs_used=8)
    assert len(plan(state).to_test) == 2


def test_unconfirmed_culprit_is_not_named_when_budget_runs_out() -> None:
    observations = (Observation("c004", PASS), Observation("c005", FAIL))
    state = BisectState(GOOD, suspects(12), observations=observations, max_runs=0)
    result = plan(state)
    assert (result.status, result.culprit) == ("failed", None)
    assert result.reason == "budget spent: 0 of 0 runs; c005 not confirmed"


def test_limits_refuse_a_bisect_over_the_route_caps() -> None:
    limits = BisectLimits(max_k=4, max_concurrent_per_route=2)
    assert limits.refusal(k=3, active_on_route=1) is None
    assert (
        limits.refusal(k=5, active_on_route=0) == "k must be between 1 and 4 on this route, got 5"
    )
    assert "limit 2" in (limits.refusal(k=1, active_on_route=2) or "")


def test_limits_read_from_route_settings() -> None:
    limits = BisectLimits.from_settings({"max_runs": 9, "max_k": 3})
    assert (limits.max_runs, limits.max_k) == (9, 3)
    assert limits.state(GOOD, suspects(3), k=2).max_runs == 9
    with pytest.raises(ValueError, match="unknown bisect settings"):
        BisectLimits.from_settings({"max_run": 9})


# flaky probes


def flips_once(culprit: int, flip_at: dict[int, int]) -> Callable[[str], Outcome]:
    """The true outcome, except commit i answers wrongly on its attempt number flip_at[i]."""
    attempts: Counter[int] = Counter()

    def oracle(sha: str) -> Outcome:
        i = position(sha)
        attempts[i] += 1
        right = FAIL if i >= culprit else PASS
        if flip_at.get(i) == attempts[i]:
            return PASS if right is FAIL else FAIL
        return right

    return oracle


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 200), k=st.integers(1, 8))
def test_one_wrong_answer_per_commit_never_names_a_wrong_culprit(
    data: st.DataObject, n: int, k: int
) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    flip_at = data.draw(
        st.dictionaries(st.integers(-1, n - 1), st.integers(1, 3), max_size=n), label="flip_at"
    )
    run = bisect(BisectState(GOOD, suspects(n), k=k, max_runs=10**6), flips_once(culprit, flip_at))
    # confirmation plus retests outvote a single wrong answer anywhere in the range
    assert (run.plan.status, run.plan.culprit) == ("found", f"c{culprit:03d}")


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 100),
    k=st.integers(1, 8),
    max_runs=st.integers(0, 20),
)
def test_under_a_tight_budget_it_is_right_or_says_why(
    data: st.DataObject, n: int, k: int, max_runs: int
) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    flip_at = data.draw(
        st.dictionaries(st.integers(-1, n - 1), st.integers(1, 3), max_size=n), label="flip_at"
    )
    state = BisectState(GOOD, suspects(n), k=k, max_runs=max_runs)
    run = bisect(state, flips_once(culprit, flip_at))
    assert run.runs <= max_runs
    if run.plan.status == "found":
        assert run.plan.culprit == f"c{culprit:03d}"
    else:
        assert run.plan.reason
        assert run.plan.reason.startswith(("budget spent", "flaky", "inconsistent", "no failure"))


def test_disagreeing_confirmation_is_retested() -> None:
    # culprit c005; its confirmation rerun passes once, so it is retested until outvoted
    run = bisect(BisectState(GOOD, suspects(8), k=1, max_runs=20), flips_once(5, {5: 2}))
    assert (run.plan.status, run.plan.culprit) == ("found", "c005")
    assert [p.outcome for r in run.rounds for p in r.probes if p.sha == "c005"] == [
        FAIL,
        PASS,
        FAIL,
        FAIL,
    ]


def test_a_commit_that_keeps_disagreeing_fails_the_bisect_as_flaky() -> None:
    answers: Counter[str] = Counter()

    def alternating(sha: str) -> Outcome:
        answers[sha] += 1
        if sha == "c003":
            return FAIL if answers[sha] % 2 else PASS
        return truth(3)(sha)

    run = bisect(BisectState(GOOD, suspects(8), k=1, max_runs=50), alternating)
    assert run.plan.status == "failed"
    assert run.plan.reason == "flaky: c003 passed 2 and failed 2 times"
    assert "c003" in run.plan.candidates


def test_an_early_false_failure_beside_a_later_pass_is_retested_first() -> None:
    observations = (Observation("c002", FAIL), Observation("c006", PASS))
    result = plan(BisectState(GOOD, suspects(12), k=2, observations=observations))
    assert (result.status, result.to_test) == ("running", ("c002", "c006"))


def test_repeated_inversion_is_reported_as_inconsistent() -> None:
    observations = (Observation("c002", FAIL),) * 2 + (Observation("c006", PASS),) * 2
    result = plan(BisectState(GOOD, suspects(12), observations=observations))
    assert (result.status, result.reason) == (
        "failed",
        "inconsistent: c002 fails but newer c006 passes",
    )


def test_a_bad_end_that_passes_is_no_failure() -> None:
    run = bisect(BisectState(GOOD, suspects(6), k=1), lambda sha: PASS)
    assert run.plan.status == "failed"
    assert run.plan.reason == "no failure: c005 passed 3 times"


def test_a_last_good_that_fails_means_the_culprit_is_older() -> None:
    run = bisect(BisectState(GOOD, suspects(1), k=2), lambda sha: FAIL)
    assert run.plan.status == "failed"
    assert (run.plan.reason or "").startswith("inconsistent: last good good fails")


# untestable probes (exit 125)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), n=st.integers(2, 200), k=st.integers(1, MAX_K))
def test_untestable_commits_are_skipped_and_the_answer_stays_honest(
    data: st.DataObject, n: int, k: int
) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    untestable = data.draw(st.sets(st.integers(0, n - 2), max_size=n), label="untestable")

    def oracle(sha: str) -> Outcome:
        return SKIP if position(sha) in untestable else truth(culprit)(sha)

    run = bisect(BisectState(GOOD, suspects(n), k=k, max_runs=10**6, confirm_runs=0), oracle)
    counts = Counter(probed(run))
    assert all(counts[f"c{i:03d}"] <= 1 for i in untestable), "an untestable commit was rerun"
    if run.plan.status == "found":
        assert run.plan.culprit == f"c{culprit:03d}"
    else:
        assert (run.plan.reason or "").startswith("untestable:")
        assert f"c{culprit:03d}" in run.plan.candidates
    if culprit not in untestable and culprit - 1 not in untestable:
        assert run.plan.status == "found"


def test_untestable_neighbours_leave_the_culprit_among_candidates() -> None:
    def oracle(sha: str) -> Outcome:
        return SKIP if sha in ("c003", "c004") else truth(4)(sha)

    run = bisect(BisectState(GOOD, suspects(8), k=1, confirm_runs=0), oracle)
    assert run.plan.status == "failed"
    assert run.plan.reason == "untestable: 2 commits gave no result; the culprit is one of 3"
    assert run.plan.candidates == ("c003", "c004", "c005")


# ranked suspects guide probes, never at the cost of a round


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(1, 400), k=st.integers(1, MAX_K))
def test_ranked_probes_keep_the_round_bound_whatever_the_ranking(
        data: st.DataObject, n: int, k: int) -> None:
    culprit = data.draw(st.integers(0, n - 1), label="culprit")
    ranked = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=5), label="ranked")
    state = BisectState(GOOD, suspects(n), k=k, max_runs=10**6, confirm_runs=0,
                        ranked=tuple(f"c{i:03d}" for i in ranked))
    run = bisect(state, truth(culprit))
    assert run.plan.status == "found" and run.plan.culprit == f"c{culprit:03d}"
    assert len(run.rounds) <= round_bound(n, k)
    assert all(len(r.probes) <= k for r in run.rounds)
    assert len(set(probed(run))) == len(probed(run)), "a settled commit was run twice"
    confirmed = bisect(replace(state, confirm_runs=1), truth(culprit))
    assert confirmed.plan.culprit == f"c{culprit:03d}"
    assert len(confirmed.rounds) <= round_bound(n, k) + (2 if k == 1 else 1)


def test_a_right_first_guess_brackets_the_culprit_in_the_first_round() -> None:
    # 20 suspects, 3 runs per round: 3 rounds unguided; the guess leaves room to bracket it
    state = BisectState(GOOD, suspects(20), k=3, max_runs=100, ranked=("c011",))
    first = plan(state)
    assert {"c010", "c011"} <= set(first.to_test)
    guided = bisect(state, truth(11))
    plain = bisect(replace(state, ranked=()), truth(11))
    assert guided.plan.culprit == plain.plan.culprit == "c011"
    assert len(guided.rounds) == 2, "one round to bracket it, one to confirm it"
    assert len(plain.rounds) > len(guided.rounds)


def test_a_guess_that_would_cost_a_round_is_not_followed() -> None:
    # 64 = 4**3 suspects with k=3: only the even split keeps 3 rounds, so no bracketing
    state = BisectState(GOOD, suspects(64), k=3, max_runs=100, ranked=("c040",))
    assert plan(state).to_test == plan(replace(state, ranked=())).to_test


def test_ranked_commits_outside_the_interval_are_ignored() -> None:
    state = BisectState(GOOD, suspects(20), k=3, max_runs=100, ranked=("elsewhere",))
    assert plan(state).to_test == plan(replace(state, ranked=())).to_test
