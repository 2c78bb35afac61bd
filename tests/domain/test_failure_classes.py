"""Failure classes: the shipped table, route rules in front, tests outranking infra hints."""

from __future__ import annotations

import pytest

from bot.domain.cells import cell_verdict
from bot.domain.failure_classes import (
    DEFAULT_RULES,
    Classification,
    FailureClass,
    FailureRule,
    classify,
    rules_for,
    without_infra,
)
from bot.domain.failure_lines import extract
from bot.domain.model import CellStatus, JobResult
from tests.support.fixtures import fixture_path

INFRA, BUILD, TEST, UNKNOWN = (FailureClass.INFRA, FailureClass.BUILD, FailureClass.TEST,
                               FailureClass.UNKNOWN)


def of(text: str, conclusion: str | None = "failure",
       rules: tuple[FailureRule, ...] = DEFAULT_RULES) -> Classification:
    return classify(text.splitlines(), extract(text), conclusion, rules)


def of_log(name: str, **kwargs: object) -> Classification:
    return of(fixture_path("logs", name).read_text(encoding="utf-8"), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "kind", "rule"), [
    ("no-space.log", INFRA, "no space left on device"),
    ("runner-lost.log", INFRA, "runner lost"),
    ("image-pull.log", INFRA, "image pull failed"),
    ("oom-killed.log", INFRA, "killed: out of memory"),
    ("network-mirror.log", INFRA, "network timeout to a mirror"),
    ("build-error.log", BUILD, "compiler error"),
    ("pytest-failure.log", TEST, "tests failed"),
    ("import-error.log", TEST, "error in the log"),
])
def test_shipped_table_on_real_shaped_logs(name: str, kind: FailureClass, rule: str) -> None:
    result = of_log(name)
    assert (result.kind, result.rule) == (kind, rule)
    assert result.line, "the deciding line is kept to show"


@pytest.mark.parametrize(("line", "rule"), [
    ("OSError: [Errno 28] No space left on device", "no space left on device"),
    ("##[error]The self-hosted runner: i-0abc lost communication with the server.",
     "runner lost"),
    ("Killed", "killed: out of memory"),
    ("Out of memory: Killed process 4242 (python)", "killed: out of memory"),
    ("docker: Error response from daemon: manifest for ghcr.io/x:1 not found", "image pull failed"),
    ("toomanyrequests: You have reached your pull rate limit.", "image pull failed"),
    ("curl: (28) Failed to connect to download.pytorch.org port 443",
     "network timeout to a mirror"),
    ("fatal: unable to access 'https://github.com/pytorch/vision/': Could not resolve host",
     "network timeout to a mirror"),
    ("pip._vendor.urllib3.exceptions.ReadTimeoutError: HTTPSConnectionPool(host='pypi.org', "
     "port=443): Read timed out.", "network timeout to a mirror"),
    ("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver",
     "GPU unavailable"),
])
def test_each_default_rule_recognises_its_cause(line: str, rule: str) -> None:
    result = of(line)
    assert result.kind is INFRA and result.rule == rule


@pytest.mark.parametrize("line", [
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "ConnectionResetError: [Errno 104] Connection reset by peer",  # a distributed test's own
    "RuntimeError: Timed out waiting for the store",
    "AssertionError: Tensor-likes are not close!",
])
def test_failures_of_the_code_under_test_are_not_infra(line: str) -> None:
    assert of(line).kind is TEST


def test_startup_failure_is_infra_whatever_the_log() -> None:
    result = classify([], extract(""), "startup_failure")
    assert (result.kind, result.rule) == (INFRA, "workflow could not start")


def test_failed_tests_outrank_infra_lines_which_stay_as_hints() -> None:
    result = of("FAILED t/test_a.py::T::test_b - OSError: No space left on device\n"
                "OSError: [Errno 28] No space left on device")
    assert result.kind is TEST
    assert result.hints == ("no space left on device",)


def test_nothing_telling_is_unknown() -> None:
    assert of("##[error]Process completed with exit code 1.").kind is UNKNOWN
    assert of("").kind is UNKNOWN


def test_route_rules_come_first_and_can_pin_a_line_to_a_class() -> None:
    gpu_oom = FailureRule("GPU out of memory", r"CUDA out of memory")
    assert of("torch.OutOfMemoryError: CUDA out of memory.",
              rules=rules_for([gpu_oom])).rule == "GPU out of memory"
    pinned = FailureRule("disk checks are tests", r"test_disk_full", FailureClass.TEST)
    result = of("OSError: No space left on device (from test_disk_full)",
                rules=rules_for([pinned]))
    assert (result.kind, result.rule) == (TEST, "disk checks are tests")


def test_a_rule_needs_a_valid_pattern_and_class() -> None:
    with pytest.raises(ValueError, match="invalid regular expression"):
        FailureRule("bad", "(")
    with pytest.raises(ValueError, match="class must be one of"):
        FailureRule("bad", "x", FailureClass.UNKNOWN)


def test_default_rule_names_are_unique() -> None:
    names = [rule.name for rule in DEFAULT_RULES]
    assert len(names) == len(set(names))


def run(job_id: int, conclusion: str, shard: int = 1, total: int = 2) -> JobResult:
    return JobResult(repo="o/r", sha="a" * 40, workflow="inductor",
                     job_name=f"test (inductor, {shard}, {total}, linux)", job_id=job_id,
                     status="completed", conclusion=conclusion)


@pytest.mark.parametrize(("runs", "infra", "status"), [
    ([run(1, "failure"), run(2, "success", 2)], {1}, CellStatus.SUCCESS),  # no signal + pass
    ([run(1, "failure"), run(2, "failure", 2)], {1}, CellStatus.FAILURE),  # the other is real
    ([run(1, "failure", total=1), run(3, "success", total=1)], {1},
     CellStatus.SUCCESS),  # a rerun that passed: not flaky
    ([run(1, "failure", total=1), run(3, "success", total=1)], set(), CellStatus.FLAKY),
    ([run(1, "failure", total=1)], {1}, CellStatus.NONE),
    ([run(1, "failure"), run(2, "success", 2)], set(), CellStatus.FAILURE),
])
def test_infra_failures_count_like_cancelled_runs_in_a_cell(runs: list[JobResult],
                                                            infra: set[int],
                                                            status: CellStatus) -> None:
    assert cell_verdict(without_infra(runs, frozenset(infra))).status is status
