"""Flaky or real: each verdict from its evidence, both sides shown when they disagree."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.failure_classes import FailureClass
from bot.domain.real_or_flaky import (
    MIN_SAME,
    FailedRun,
    FailingCommit,
    JobEvidence,
    Verdict,
    judge,
)

TEST, INFRA = FailureClass.TEST, FailureClass.INFRA
SHARD2 = "cuda12.8 / test (inductor_huggingface, 2, 3, linux.g5.4xlarge.nvidia.gpu)"


def commit(i: int, *sigs: str | None, kind: FailureClass | None = TEST,
           **kwargs: object) -> FailingCommit:
    runs = tuple(FailedRun(s, kind if s is not None else None) for s in sigs)
    return FailingCommit(f"{i:07d}abc", runs, **kwargs)  # type: ignore[arg-type]


def test_same_error_on_every_failing_commit_looks_real() -> None:
    judgement = judge(JobEvidence((commit(3, "E1"), commit(2, "E1"), commit(1, "E1"))))
    assert judgement.verdict is Verdict.REAL
    assert judgement.evidence == ("the same error on 3 failing commits in a row "
                                  "(every failing commit)",)
    assert judgement.against == ()


def test_a_rerun_that_failed_again_is_evidence_it_is_real() -> None:
    judgement = judge(JobEvidence((commit(2, "E1", failed_again=True),)))
    assert judgement.verdict is Verdict.REAL
    assert judgement.evidence == ("failed again on a rerun at 0000002",)


def test_a_shard_passing_on_a_rerun_looks_flaky() -> None:
    judgement = judge(JobEvidence((commit(2, "E1", passed_on_rerun=(SHARD2,)),)))
    assert judgement.verdict is Verdict.FLAKY
    assert judgement.evidence == ("shard 2/3 passed on a rerun at 0000002",)


def test_changing_errors_and_flaky_neighbours_look_flaky() -> None:
    judgement = judge(JobEvidence((commit(3, "E1"), commit(2, "E2"), commit(1, "E3")),
                                  flaky_nearby=("9" * 40,)))
    assert judgement.verdict is Verdict.FLAKY
    assert judgement.evidence == ("passed only on a rerun at 9999999, near this streak",
                                  "3 different errors on 3 failing commits")


def test_known_flaky_tests_look_flaky() -> None:
    run = FailedRun("E1", TEST, ("t.py::T::a",))
    job = JobEvidence((FailingCommit("1234567", (run,)),), known_flaky=frozenset({"t.py::T::a"}))
    judgement = judge(job)
    assert judgement.verdict is Verdict.FLAKY
    assert judgement.evidence == ("the failing test is known to be flaky (t.py::T::a)",)
    other = JobEvidence((FailingCommit("1234567", (FailedRun("E1", TEST, ("t.py::T::b",)),)),),
                        known_flaky=frozenset({"t.py::T::a"}))
    assert judge(other).verdict is Verdict.UNCLEAR, "one unknown test is not explained away"


def test_evidence_both_ways_is_unclear_and_shows_both() -> None:
    judgement = judge(JobEvidence((commit(3, "E1", passed_on_rerun=(SHARD2,)),
                                   commit(2, "E1"), commit(1, "E1"))))
    assert judgement.verdict is Verdict.UNCLEAR
    assert judgement.evidence[0].startswith("the same error on 3 failing commits")
    assert judgement.against == ("shard 2/3 passed on a rerun at 0000003",)


def test_all_infra_failures_are_infra_naming_the_causes() -> None:
    runs = (FailedRun("infra: no space", INFRA, rule="no space left on device"),)
    job = JobEvidence((FailingCommit("a" * 40, runs), FailingCommit("b" * 40, runs),
                       FailingCommit("c" * 40, (FailedRun("infra: lost", INFRA,
                                                          rule="runner lost"),))))
    judgement = judge(job)
    assert judgement.verdict is Verdict.INFRA
    assert judgement.evidence == ("infrastructure on every failure: no space left on device "
                                  "(2), runner lost",)


def test_one_real_failure_among_infra_is_not_infra() -> None:
    job = JobEvidence((commit(2, "E1"), FailingCommit("1" * 40, (FailedRun("infra: x", INFRA,
                                                                           rule="x"),))))
    assert judge(job).verdict is not Verdict.INFRA


def test_no_evidence_yet_is_unclear() -> None:
    assert judge(JobEvidence((commit(1, None),))).evidence == ("no error lines yet",)
    assert judge(JobEvidence(())).verdict is Verdict.UNCLEAR
    single = judge(JobEvidence((commit(1, "E1"),)))
    assert single.verdict is Verdict.UNCLEAR
    assert single.evidence == ("only one failing commit with an error line so far",)


def test_the_run_of_same_signatures_counts_from_the_newest_commit() -> None:
    job = JobEvidence((commit(4, "E2"), commit(3, "E2"), commit(2, "E1"), commit(1, "E1")))
    judgement = judge(job)
    assert judgement.verdict is Verdict.UNCLEAR
    assert judgement.evidence == ("the same error on 2 failing commits in a row",)
    assert judgement.against == ("2 different errors on 4 failing commits",)


@given(st.lists(st.sampled_from(["E1", "E2", None]), min_size=1, max_size=10))
def test_verdict_agrees_with_a_from_scratch_oracle(sigs: list[str | None]) -> None:
    job = JobEvidence(tuple(commit(i, s) for i, s in enumerate(sigs)))
    judgement = judge(job)
    known = [s for s in sigs if s is not None]
    if not known:
        assert judgement.verdict is Verdict.UNCLEAR
        return
    run = 0
    for s in known:
        if s != known[0]:
            break
        run += 1
    real = run >= MIN_SAME
    flaky = len(set(known)) > 1
    expected = (Verdict.REAL if real and not flaky else Verdict.FLAKY if flaky and not real
                else Verdict.UNCLEAR)
    assert judgement.verdict is expected
    assert judgement.evidence, "a verdict always says why"
