"""Failure signatures: noise out, same failure same text; grouping checked against an oracle."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.failure_classes import Classification, FailureClass, classify
from bot.domain.failure_lines import extract
from bot.domain.signatures import group_by_signature, normalise, signature


def sig(text: str) -> str | None:
    found = extract(text)
    return signature(found, classify(text.splitlines(), found))


def test_noise_is_normalised_away() -> None:
    a = "RuntimeError: bad tiling at 0x7f3a2c1b9e80 for node buf12 after 12.5s in /tmp/tmpa1/k.py"
    b = "RuntimeError: bad tiling at 0x55aa10 for node buf12 after 3s in /tmp/tmpzz/k.py"
    assert normalise(a) == normalise(b)
    assert "buf12" in normalise(a), "numbers inside names stay"


def test_runner_paths_do_not_split_one_failure() -> None:
    a = "/var/lib/jenkins/workspace/aten/src/ATen/native/Conv.cpp:12:5: error: 'f' undeclared"
    b = "/home/ec2-user/actions-runner/_work/pytorch/pytorch/aten/src/ATen/native/Conv.cpp:14:5: " \
        "error: 'f' undeclared"
    assert sig(a) == sig(b)


def test_pytest_summary_signs_with_its_message_not_the_test() -> None:
    a = sig("FAILED [0.1s] a/test_x.py::T::test_1 - AssertionError: mismatch in buf3")
    b = sig("FAILED [2.0s] b/test_y.py::U::test_2 - AssertionError: mismatch in buf3")
    assert a == b == "AssertionError: mismatch in buf3"


def test_tests_without_message_sign_with_their_ids() -> None:
    assert sig("FAILED b/test_y.py::U::t2\nFAILED a/test_x.py::T::t1") == \
        "tests: a/test_x.py::T::t1, b/test_y.py::U::t2"


def test_infra_signs_with_its_cause() -> None:
    assert sig("No space left on device") == "infra: no space left on device"
    assert signature(extract(""), Classification(FailureClass.INFRA)) == "infra: unknown cause"


def test_nothing_telling_has_no_signature() -> None:
    assert sig("all good\n##[error]Process completed with exit code 1.") is None


def test_exit_code_annotation_is_never_the_signature_when_something_else_is_known() -> None:
    text = "##[error]Process completed with exit code 1.\nerror: linker command failed"
    assert sig(text) == "error: linker command failed"


def test_groups_keep_first_seen_order_and_never_group_unknowns() -> None:
    groups = group_by_signature([("j1", "A"), ("j2", None), ("j3", "A"), ("j4", None),
                                 ("j5", "B")])
    assert [(g.signature, g.members) for g in groups] == [
        ("A", ("j1", "j3")), (None, ("j2",)), (None, ("j4",)), ("B", ("j5",))]


@given(st.lists(st.tuples(st.integers(0, 50), st.one_of(st.none(), st.sampled_from("ABCD"))),
                unique_by=lambda item: item[0], max_size=30))
def test_grouping_matches_a_brute_force_oracle(items: list[tuple[int, str | None]]) -> None:
    groups = group_by_signature(items)
    assert sorted(m for g in groups for m in g.members) == sorted(m for m, _ in items)
    for group in groups:
        sigs = {s for m, s in items if m in group.members}
        assert sigs == {group.signature}
        if group.signature is None:
            assert len(group.members) == 1
        else:
            assert set(group.members) == {m for m, s in items if s == group.signature}
    firsts = [g.members[0] for g in groups]
    order = [m for m, _ in items]
    assert firsts == sorted(firsts, key=order.index)


def test_classify_and_sign_are_deterministic_over_line_order_of_unrelated_noise() -> None:
    text = "noise 1\nRuntimeError: boom\nnoise 2"
    assert sig(text) == sig("other\n" + text) == "RuntimeError: boom"
