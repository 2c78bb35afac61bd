"""Suspect ranking: touched files against named files, code area, reverts, relands, reasons."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain import suspects as rules
from bot.domain.failure_lines import extract
from bot.domain.suspects import (
    Change,
    Clue,
    clues_from,
    glob_pattern,
    in_area,
    preferred,
    rank,
    same_file,
    standout,
)
from tests.support.fixtures import fixture_path

AREA = ("torch/_inductor/**",)
PYTEST_LOG = "pytest-failure.log"


def clues_of(*logs: str) -> tuple[Clue, ...]:
    return clues_from(extract(fixture_path("logs", name).read_text()) for name in logs)


def order(changes: list[Change], clues: tuple[Clue, ...], area: tuple[str, ...] = AREA
          ) -> list[str]:
    return [s.sha for s in rank(changes, clues, area)]


def test_paths_match_at_a_directory_boundary_either_way() -> None:
    log = "/opt/conda/lib/python3.10/site-packages/torch/_inductor/scheduler.py"
    assert same_file("torch/_inductor/scheduler.py", log)
    assert same_file("test/inductor/test_x.py", "inductor/test_x.py")
    assert not same_file("torch/_inductor/my_scheduler.py", "torch/_inductor/scheduler.py")
    assert not same_file("torch/_inductor/scheduler.py", "other/_inductor/scheduler.py")


def test_globs() -> None:
    assert glob_pattern("torch/_inductor/**").match("torch/_inductor/codegen/triton.py")
    assert not glob_pattern("torch/_inductor/*").match("torch/_inductor/codegen/triton.py")
    assert glob_pattern("**/test_*.py").match("test/inductor/test_x.py")
    assert glob_pattern("**/test_*.py").match("test_x.py")
    assert in_area("torch/_dynamo/x.py", AREA) is None


def test_clues_weigh_the_innermost_code_frame_and_skip_the_harness() -> None:
    clues = clues_of(PYTEST_LOG)
    assert clues[0].path.endswith("torch/_inductor/codegen/triton.py")
    assert clues[0].weight == rules.FRAME_WEIGHTS[0]
    assert "innermost" in clues[0].why
    paths = [c.path for c in clues]
    assert not any(p.endswith("unittest/case.py") for p in paths)
    test_file = next(c for c in clues if c.path == "inductor/test_torchinductor.py")
    assert test_file.weight == rules.TEST_FILE
    assert len(paths) == len(set(paths))


def test_culprit_touching_the_traceback_file_ranks_first_with_the_reason() -> None:
    changes = [
        Change("a" * 40, "[inductor] tidy lowering", files=("torch/_inductor/lowering.py",)),
        Change("b" * 40, "[inductor] new tiling", files=("torch/_inductor/codegen/triton.py",
                                                         "torch/_inductor/config.py")),
        Change("c" * 40, "docs: typo", files=("docs/source/index.rst",)),
        Change("d" * 40, "[dynamo] guard", files=("torch/_dynamo/guards.py",)),
    ]
    ranking = rank(changes, clues_of(PYTEST_LOG), AREA)
    top = standout(ranking)
    assert top is not None and top.sha == "b" * 40
    assert top.reasons[0] == ("touches torch/_inductor/codegen/triton.py, named in the "
                              "traceback (innermost frame)")
    assert [s.sha[0] for s in ranking] == ["b", "a", "d", "c"]
    assert ranking[-1].reasons == ("changes only documentation",)
    assert preferred(ranking) == ("b" * 40,), "touching the code area alone guides no bisect"


def test_neighbour_and_area_score_less_than_the_named_file() -> None:
    clues = clues_of(PYTEST_LOG)
    named = Change("1" * 40, files=("torch/_inductor/scheduler.py",))
    sibling = Change("2" * 40, files=("torch/_inductor/codegen/cpp.py",))
    area = Change("3" * 40, files=("torch/_inductor/fx_passes/post_grad.py",))
    ranking = rank([area, sibling, named], clues, AREA)
    assert [s.sha[0] for s in ranking] == ["1", "2", "3"]
    assert ranking[1].reasons[0] == ("touches torch/_inductor/codegen/, next to "
                                     "torch/_inductor/codegen/triton.py")
    assert ranking[2].reasons == ("in the route's code area (torch/_inductor/**)",)


def test_failing_test_file_and_modules_named_in_errors_are_evidence() -> None:
    test_change = Change("t" * 40, files=("test/inductor/test_torchinductor.py",))
    other = Change("o" * 40, files=("torch/fx/graph.py",))
    assert order([other, test_change], clues_of(PYTEST_LOG))[0] == "t" * 40
    module_change = Change("m" * 40, files=("torch/_inductor/codecache.py",))
    ranking = rank([other, module_change], clues_of("import-error.log"), AREA)
    assert ranking[0].sha == "m" * 40
    assert ranking[0].reasons[0] == ("touches torch/_inductor/codecache.py (module "
                                     "torch._inductor.codecache named in the error)")


def test_compiler_error_file_points_at_its_change() -> None:
    culprit = Change("c" * 40, files=("aten/src/ATen/native/Convolution.cpp",))
    decoy = Change("d" * 40, files=("aten/src/ATen/native/Linear.cpp",))
    ranking = rank([culprit, decoy], clues_of("build-error.log"), ())
    assert ranking[0].sha == "c" * 40
    assert ranking[0].reasons[0].endswith("named in the compiler error")
    assert ranking[1].reasons[0].startswith("touches aten/src/ATen/native/, next to")


def test_a_change_reverted_within_the_range_and_its_revert_cancel_out() -> None:
    clues = clues_of(PYTEST_LOG)
    original = Change("a1" + "0" * 38, "[inductor] new tiling (#100)",
                      files=("torch/_inductor/codegen/triton.py",))
    revert = Change("b2" + "0" * 38, 'Revert "[inductor] new tiling (#100)"',
                    "This reverts commit a1000000.", files=("torch/_inductor/codegen/triton.py",))
    bystander = Change("c3" + "0" * 38, files=("torch/_inductor/ir.py",))
    ranking = rank([original, bystander, revert], clues, AREA)
    by_sha = {s.sha: s for s in ranking}
    assert by_sha[original.sha].score == rules.REVERTED_IN_RANGE
    assert by_sha[original.sha].reasons == ("reverted by b200000 within the range",)
    assert by_sha[revert.sha].score == 0
    assert "cancel out" in by_sha[revert.sha].reasons[0]
    assert ranking[0].sha == bystander.sha


def test_revert_found_by_title_alone_and_a_revert_of_an_older_change_is_scored_normally() -> None:
    clues = clues_of(PYTEST_LOG)
    original = Change("a" * 40, "Faster tiling (#7)", files=("torch/_inductor/codegen/triton.py",))
    by_title = Change("b" * 40, 'Revert "Faster tiling (#7)" (#9)', files=())
    assert rank([original, by_title], clues)[1].score == rules.REVERTED_IN_RANGE
    older = Change("c" * 40, 'Revert "Something older (#1)"',
                   files=("torch/_inductor/codegen/triton.py",))
    assert rank([older], clues)[0].score >= rules.FRAME_WEIGHTS[0]


def test_relands_get_a_nudge_and_unknown_files_are_said() -> None:
    reland = Change("r" * 40, "[Reland] new tiling", files=None)
    plain = Change("p" * 40, "new tiling", files=None)
    ranking = rank([plain, reland], clues_of(PYTEST_LOG), AREA)
    assert ranking[0].sha == "r" * 40 and ranking[0].score == rules.RELAND
    assert ranking[0].reasons == ("relands a change that was reverted before", "files not known")
    assert ranking[1].reasons == ("files not known",)
    assert standout(ranking) is not None


def test_no_evidence_keeps_trunk_order_and_no_suspect_stands_out() -> None:
    changes = [Change(str(i) * 40, files=("README.txt",) if i == 9 else ("x/y.py",))
               for i in range(1, 6)]
    ranking = rank(changes, (), ())
    assert [s.sha for s in ranking] == [c.sha for c in changes]
    assert standout(ranking) is None and preferred(ranking) == ()


def test_ties_at_the_top_mean_no_standout() -> None:
    clues = clues_of(PYTEST_LOG)
    twins = [Change(c * 40, files=("torch/_inductor/codegen/triton.py",)) for c in "ab"]
    assert standout(rank(twins, clues, AREA)) is None


_FILES = ["torch/_inductor/codegen/triton.py", "torch/_inductor/scheduler.py",
          "torch/_inductor/ir.py", "torch/_dynamo/guards.py", "docs/a.md",
          "test/inductor/test_torchinductor.py", "aten/src/ATen/native/Conv.cpp"]


@given(st.lists(st.one_of(st.none(), st.lists(st.sampled_from(_FILES), max_size=4)),
                min_size=1, max_size=12))
def test_ranking_is_a_permutation_sorted_by_score_with_stable_ties(
        files: list[list[str] | None]) -> None:
    changes = [Change(f"{i:040d}", f"change {i}", files=None if f is None else tuple(f))
               for i, f in enumerate(files)]
    clues = clues_of(PYTEST_LOG)
    ranking = rank(changes, clues, AREA)
    assert sorted(s.sha for s in ranking) == sorted(c.sha for c in changes)
    keys = [(-s.score, s.position) for s in ranking]
    assert keys == sorted(keys)
    for suspect in ranking:
        # oracle: the score is the sum the reasons claim, recomputed from scratch
        change = changes[suspect.position]
        expected = 0
        if change.files is not None:
            for clue in clues:
                if any(same_file(f, clue.path) for f in change.files):
                    expected += clue.weight
            if any(f.startswith("torch/_inductor/") for f in change.files):
                expected += rules.AREA
            if change.files and all(f.startswith("docs/") for f in change.files):
                expected += rules.DOCS_ONLY
        # only "next to a named file" is left for the ranking to add
        assert suspect.score in (expected, expected + rules.NEIGHBOUR)
