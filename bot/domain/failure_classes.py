"""Failure classes: infrastructure (the job never got to judge the code) or a test/build failure.

A table of named patterns decides, line by line; the shipped defaults are below and a
route may put its own rules in front of them (``failure_rules`` in the routing TOML).
See ``EVIDENCE.md`` beside this file for the table in prose.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache

from bot.domain.failure_lines import FailureLines, LineKind, clean
from bot.domain.model import JobResult


class FailureClass(StrEnum):
    INFRA = "infra"  # runner lost, disk full, OOM-killed, image pull, network, GPU gone
    BUILD = "build"  # the code did not compile
    TEST = "test"  # tests (or the program under test) failed
    UNKNOWN = "unknown"  # nothing telling in the log (or no log at all)

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    FailureClass.INFRA: "infrastructure",
    FailureClass.BUILD: "build failure",
    FailureClass.TEST: "test failure",
    FailureClass.UNKNOWN: "no error line found",
}

RULE_KINDS = (FailureClass.INFRA, FailureClass.BUILD, FailureClass.TEST)

# Words that make a connection error a download problem (a mirror, a registry, a model
# hub) rather than a test of networking code, which is what distributed tests do.
_DOWNLOAD = (r"(?=.*(?:https?://|host=|pypi|conda|mirror|registry|download|huggingface|"
             r"s3\.amazonaws|github\.com))")


@dataclass(frozen=True, slots=True)
class FailureRule:
    """One row of the table: a name people read, a pattern, and the class it gives.

    ``pattern`` is a regular expression searched, case-insensitively, in each log line
    (timestamps and colours removed). The first rule that matches a line decides what
    that line says, so a route's own rules, which come first, can override a default.
    """

    name: str
    pattern: str
    kind: FailureClass = FailureClass.INFRA

    def __post_init__(self) -> None:
        if self.kind not in RULE_KINDS:
            raise ValueError(f"rule {self.name!r}: class must be one of "
                             f"{', '.join(k.value for k in RULE_KINDS)}, got {self.kind!r}")
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"rule {self.name!r}: invalid regular expression: {exc}") from None


DEFAULT_RULES: tuple[FailureRule, ...] = (
    FailureRule("runner lost",
                r"runner has received a shutdown signal|lost communication with the server"
                r"|self-hosted runner .*(?:lost|offline)|hosted runner encountered an error"
                r"|job was not acquired by runner|runner .* did not respond"),
    FailureRule("no space left on device",
                r"no space left on device|\bENOSPC\b|disk quota exceeded"),
    FailureRule("killed: out of memory",
                r"^killed$|\b\d+ killed\s|killed\s+\(?signal 9|exit code 137|\boom[- ]?kill"
                r"|out of memory: kill|cannot allocate memory|std::bad_alloc"),
    FailureRule("image pull failed",
                r"(?:failed to|unable to|error) pull(?:ing)? image|pull access denied"
                r"|error response from daemon: .*(?:manifest|pull|timeout)"
                r"|manifest (?:for \S+ )?(?:not found|unknown)|toomanyrequests"
                r"|imagepullbackoff|errimagepull"),
    FailureRule("network timeout to a mirror",
                r"could not resolve host|temporary failure in name resolution"
                r"|curl: \((?:6|7|28|35|52|56)\)|unable to access 'https?://"
                r"|tls handshake timeout|" + _DOWNLOAD +
                r"(?=.*(?:timed? ?out|connection (?:reset|refused|aborted)|max retries exceeded"
                r"|remotedisconnected|\b50[234]\b))"),
    FailureRule("GPU unavailable",
                r"nvidia-smi has failed|no cuda-capable device is detected"
                r"|cuda driver version is insufficient|gpu has fallen off the bus"
                r"|unable to determine the device handle for gpu|nvidia-container-cli: .*error"),
    FailureRule("compiler error",
                r"^\S+\.(?:c|cc|cpp|cu|cuh|h|hpp|cxx):\d+(?::\d+)?: (?:fatal )?error"
                r"|ninja: build stopped|compilation terminated|error: command '.*' failed",
                FailureClass.BUILD),
)

STARTUP_FAILURE = "startup_failure"


@dataclass(frozen=True, slots=True)
class Classification:
    """The class of one failed job and why.

    ``rule`` names what decided (a rule's name, ``workflow could not start``, ``tests
    failed``...); ``line`` is the log line that matched, if any. ``hints`` are infra rules
    that matched too but did not decide (tests failed as well, so the code was judged).
    """

    kind: FailureClass
    rule: str | None = None
    line: str | None = None
    hints: tuple[str, ...] = field(default_factory=tuple)

    @property
    def infra(self) -> bool:
        return self.kind is FailureClass.INFRA


@dataclass(frozen=True, slots=True)
class _Table:
    rules: tuple[FailureRule, ...]
    compiled: tuple[re.Pattern[str], ...]
    any_rule: re.Pattern[str]


@lru_cache(maxsize=64)
def _table(rules: tuple[FailureRule, ...]) -> _Table:
    compiled = tuple(re.compile(r.pattern, re.IGNORECASE) for r in rules)
    # one pass over each line finds the few lines any rule matches; only those are
    # checked rule by rule (a log tail has tens of thousands of lines)
    joined = "|".join(f"(?:{r.pattern})" for r in rules) or r"(?!)"
    return _Table(rules, compiled, re.compile(joined, re.IGNORECASE))


def rules_for(extra: Sequence[FailureRule]) -> tuple[FailureRule, ...]:
    """A route's rules in front of the defaults (first match wins)."""
    return (*extra, *DEFAULT_RULES)


def classify(log_lines: Iterable[str], found: FailureLines, conclusion: str | None = None,
             rules: Sequence[FailureRule] = DEFAULT_RULES) -> Classification:
    """Decide the class of one failed job from its log lines and their key lines.

    1. ``startup_failure``: infrastructure (the workflow could not start).
    2. Each line is given to the first rule that matches it.
    3. Failed tests were found: a test failure (the code was judged); infra rules that
       matched anyway are kept as hints.
    4. An infra rule matched: infrastructure, named by the first matching rule.
    5. A build rule matched, or a compiler error was found: a build failure.
    6. Any other telling line (exception, error, annotation other than the exit code):
       a test failure. Nothing at all: unknown.
    """
    if (conclusion or "").lower() == STARTUP_FAILURE:
        return Classification(FailureClass.INFRA, "workflow could not start")
    table = _table(tuple(rules))
    first: dict[FailureClass, tuple[str, str]] = {}
    infra_names: list[str] = []
    for raw in log_lines:
        line = clean(raw)
        if not line or not table.any_rule.search(line):
            continue
        for rule, pattern in zip(table.rules, table.compiled, strict=True):
            if pattern.search(line):
                first.setdefault(rule.kind, (rule.name, line))
                if rule.kind is FailureClass.INFRA and rule.name not in infra_names:
                    infra_names.append(rule.name)
                break
    if FailureClass.TEST in first:
        name, line = first[FailureClass.TEST]
        return Classification(FailureClass.TEST, name, _short(line), tuple(infra_names))
    if found.tests_failed:
        test = next(k for k in found.lines if k.kind is LineKind.TEST)
        return Classification(FailureClass.TEST, "tests failed", test.text, tuple(infra_names))
    if FailureClass.INFRA in first:
        name, line = first[FailureClass.INFRA]
        return Classification(FailureClass.INFRA, name, _short(line))
    build = next((k for k in found.lines if k.kind is LineKind.BUILD), None)
    if FailureClass.BUILD in first:
        name, line = first[FailureClass.BUILD]
        return Classification(FailureClass.BUILD, name, _short(line))
    if build is not None:
        return Classification(FailureClass.BUILD, "compiler error", build.text)
    telling = [k for k in found.lines if k.kind not in (LineKind.EXIT,)]
    if telling:
        return Classification(FailureClass.TEST, "error in the log", telling[0].text)
    return Classification(FailureClass.UNKNOWN)


def _short(line: str, limit: int = 300) -> str:
    line = " ".join(line.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def without_infra(results: Iterable[JobResult], infra: frozenset[int]) -> list[JobResult]:
    """The runs of a cell with each infra-classified failure counted like a cancelled run.

    An infrastructure failure says nothing about the code: a shard whose only failure is
    infra gives no signal, and one that passed on a rerun is a plain pass, not flaky.
    """
    return [replace(r, conclusion="cancelled") if r.job_id in infra else r for r in results]
