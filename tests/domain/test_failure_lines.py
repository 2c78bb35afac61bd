"""Key lines of failed logs: test ids, tracebacks with their innermost frame, errors, order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.domain.failure_lines import (
    LINE_CHARS,
    MAX_LINES,
    MAX_TESTS,
    LineKind,
    clean,
    extract,
    from_reported,
)
from tests.support.fixtures import fixture_path

TS = "2025-12-09T12:00:00.1234567Z "


def log(*lines: str) -> str:
    return "\n".join(TS + line for line in lines)


def read(name: str) -> str:
    return fixture_path("logs", name).read_text(encoding="utf-8")


def test_clean_drops_timestamp_colours_and_line_ends() -> None:
    assert clean(TS + "\x1b[31mFAILED\x1b[0m x.py::t\r\n") == "FAILED x.py::t"
    assert clean("no timestamp here  ") == "no timestamp here"
    assert clean(TS + "    indented") == "    indented", "inner indentation is kept"


def test_pytest_summary_gives_the_test_id_and_its_file_first() -> None:
    found = extract(read("pytest-failure.log"))
    head = found.headline
    assert head is not None and head.kind is LineKind.TEST
    assert head.test == "inductor/test_torchinductor.py::GPUTests::test_conv2d_cuda"
    assert head.file == "inductor/test_torchinductor.py"
    assert "RuntimeError: bad tiling" in head.text
    assert not head.text.startswith("2025"), "the timestamp is gone"
    assert found.tests == ("inductor/test_torchinductor.py::GPUTests::test_conv2d_cuda",
                           "inductor/test_torchinductor.py::GPUTests::test_conv3d_cuda")
    assert found.test_count == 2
    assert found.tests_failed


def test_progress_line_and_summary_of_one_test_count_once_keeping_the_message() -> None:
    found = extract(log("a/test_x.py::T::test_y FAILED [ 50%]",
                        "FAILED a/test_x.py::T::test_y - AssertionError: 1 != 2"))
    assert found.test_count == 1
    tests = [line for line in found.lines if line.kind is LineKind.TEST]
    assert [line.text for line in tests] == ["FAILED a/test_x.py::T::test_y - AssertionError: "
                                             "1 != 2"]


def test_traceback_keeps_the_last_line_and_the_innermost_frame() -> None:
    found = extract(read("pytest-failure.log"))
    [exc] = [line for line in found.lines if line.kind is LineKind.EXCEPTION]
    assert exc.text == "RuntimeError: bad tiling at 0x7f3a2c1b9e80 for node buf12"
    assert exc.file is not None and exc.file.endswith("torch/_inductor/codegen/triton.py")
    assert exc.frames[0].endswith("unittest/case.py"), "frames are kept outermost first"
    assert found.files[0].endswith("torch/_inductor/codegen/triton.py")
    assert "inductor/test_torchinductor.py" in found.files


def test_exception_name_need_not_end_in_error_after_a_traceback() -> None:
    found = extract(log("Traceback (most recent call last):",
                        '  File "/w/torch/_dynamo/symbolic_convert.py", line 9, in step',
                        "    raise Unsupported(msg)",
                        "torch._dynamo.exc.Unsupported: call_function in skip_files"))
    head = found.headline
    assert head is not None and head.kind is LineKind.EXCEPTION
    assert head.text.startswith("torch._dynamo.exc.Unsupported")
    assert head.file == "/w/torch/_dynamo/symbolic_convert.py"


def test_chained_exceptions_put_the_final_one_first() -> None:
    found = extract(log("Traceback (most recent call last):",
                        '  File "/w/a.py", line 1, in f',
                        "KeyError: 'x'",
                        "",
                        "During handling of the above exception, another exception occurred:",
                        "",
                        "Traceback (most recent call last):",
                        '  File "/w/b.py", line 2, in g',
                        "RuntimeError: wrapped"))
    exceptions = [line for line in found.lines if line.kind is LineKind.EXCEPTION]
    assert [e.text for e in exceptions] == ["RuntimeError: wrapped", "KeyError: 'x'"]
    assert exceptions[0].file == "/w/b.py"


def test_pytest_style_frames_and_e_lines() -> None:
    found = extract(log("test/inductor/test_a.py:12: in test_it",
                        "    run()",
                        "torch/_inductor/lowering.py:88: in make",
                        "    raise",
                        "E   torch._inductor.exc.LoweringException: AssertionError: bad",
                        "FAILED test/inductor/test_a.py::T::test_it - torch._inductor.exc."
                        "LoweringException: AssertionError: bad"))
    [exc] = [line for line in found.lines if line.kind is LineKind.EXCEPTION]
    assert exc.file == "torch/_inductor/lowering.py"
    assert exc.frames == ("test/inductor/test_a.py", "torch/_inductor/lowering.py")


def test_unittest_lines_name_the_test_and_its_module_file() -> None:
    found = extract(log("ERROR: test_foo (inductor.test_x.TestCase.test_foo)",
                        "FAIL: test_bar (__main__.TestCase.test_bar)"))
    assert found.tests == ("inductor/test_x.py::test_foo", "__main__.TestCase.test_bar")


def test_run_test_file_line_is_kept_only_without_test_ids() -> None:
    crashed = extract(log("inductor/test_torchinductor 1/1 failed! Received signal: SIGSEGV"))
    head = crashed.headline
    assert head is not None and head.kind is LineKind.TEST
    assert head.file == "inductor/test_torchinductor.py" and head.test is None
    assert crashed.tests_failed and crashed.test_count == 0
    with_ids = extract(read("pytest-failure.log"))
    assert not any(line.test is None and line.kind is LineKind.TEST for line in with_ids.lines)


def test_compiler_error_is_a_build_line_with_its_file() -> None:
    found = extract(read("build-error.log"))
    head = found.headline
    assert head is not None and head.kind is LineKind.BUILD
    assert head.file is not None and head.file.endswith("aten/src/ATen/native/Convolution.cpp")
    kinds = [line.kind for line in found.lines]
    assert LineKind.ERROR in kinds, "ninja's FAILED: line is kept as an error"
    assert kinds[-1] is LineKind.EXIT, "the bare exit code comes last"


def test_annotations_and_exit_code_rank_below_real_errors() -> None:
    found = extract(log("##[error]Process completed with exit code 2.",
                        "##[error]The action has timed out.",
                        "error: linker failed"))
    assert [line.kind for line in found.lines] == [LineKind.ERROR, LineKind.ANNOTATION,
                                                   LineKind.EXIT]


def test_modules_named_in_errors_are_collected() -> None:
    found = extract(read("import-error.log"))
    assert found.modules == ("torch._inductor.codecache",)
    assert found.headline is not None
    assert found.headline.file is not None
    assert found.headline.file.endswith("benchmarks/dynamo/common.py")


def test_a_clean_log_has_no_key_lines() -> None:
    found = extract(log("Collecting numpy", "Successfully installed numpy", "done"))
    assert found.lines == () and found.headline is None and not found.tests_failed


def test_identical_lines_are_kept_once_and_lines_are_cut() -> None:
    long = "RuntimeError: " + "x" * 2000
    found = extract(log(long, long, "error: a", "error: a"))
    assert len(found.lines) == 2
    assert all(len(line.text) <= LINE_CHARS for line in found.lines)


def test_many_failures_are_bounded_but_counted() -> None:
    lines = [f"FAILED t/test_{i}.py::T::test_{i} - AssertionError" for i in range(300)]
    found = extract(log(*lines))
    assert found.test_count == 300
    assert len(found.tests) == MAX_TESTS
    assert len(found.lines) == MAX_LINES
    assert found.headline is not None and found.headline.test == "t/test_0.py::T::test_0"


def test_reported_lines_keep_what_matches_no_rule() -> None:
    found = from_reported(["##[error]The action has timed out.", "something HUD picked"])
    assert [line.kind for line in found.lines] == [LineKind.ANNOTATION, LineKind.REPORTED]
    hud = from_reported(["RuntimeError: CUDA error"])
    assert hud.headline is not None and hud.headline.kind is LineKind.EXCEPTION


@pytest.mark.parametrize("name", ["pytest-failure.log", "build-error.log", "import-error.log",
                                  "no-space.log", "runner-lost.log", "image-pull.log",
                                  "oom-killed.log", "network-mirror.log"])
def test_text_and_lines_give_the_same_answer(name: str) -> None:
    text = read(name)
    assert extract(text) == extract(text.splitlines())


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=120), max_size=60))
def test_any_text_is_read_without_error_and_within_bounds(lines: list[str]) -> None:
    found = extract(lines)
    assert len(found.lines) <= MAX_LINES
    assert all(len(line.text) <= LINE_CHARS for line in found.lines)
    assert len({line.text for line in found.lines}) == len(found.lines)
    kinds = [line.kind for line in found.lines]
    assert kinds == sorted(kinds), "most telling kind first"
