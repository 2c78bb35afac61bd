"""Flaky or real: what a failing job's evidence says, with the evidence itself, never a bare score.

Input is what is known about one job's failing commits (newest first): the signature
and class of each failed run, shards that passed on a rerun, reruns that failed again,
and flakiness seen near the streak. See ``EVIDENCE.md`` beside this file.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from bot.domain.failure_classes import FailureClass

MIN_SAME = 2  # commits in a row with one signature before that counts as "real"


class Verdict(StrEnum):
    REAL = "real"  # a regression: the same failure keeps happening
    FLAKY = "flaky"  # reruns pass, or the failure keeps changing
    INFRA = "infra"  # every failure was infrastructure
    UNCLEAR = "unclear"  # too little evidence, or evidence both ways

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    Verdict.REAL: "Looks real",
    Verdict.FLAKY: "Looks flaky",
    Verdict.INFRA: "Infrastructure",
    Verdict.UNCLEAR: "Unclear",
}


@dataclass(frozen=True, slots=True)
class FailedRun:
    """One failed run at a failing commit: its signature and class (None: not known yet)."""

    signature: str | None
    kind: FailureClass | None
    tests: tuple[str, ...] = ()
    rule: str | None = None  # the rule that classified it (infra cause)


@dataclass(frozen=True, slots=True)
class FailingCommit:
    """One failing commit of a job's streak, as far as its runs tell.

    ``runs`` are the failed runs of its failed shards (final attempts first);
    ``passed_on_rerun`` names shards that failed and then passed at this commit;
    ``failed_again`` is True when some shard failed on a rerun too (two failed attempts).
    """

    sha: str
    runs: tuple[FailedRun, ...] = ()
    passed_on_rerun: tuple[str, ...] = ()
    failed_again: bool = False

    @property
    def signature(self) -> str | None:
        """The commit's signature: the first known one among its failed runs."""
        return next((r.signature for r in self.runs if r.signature is not None), None)


@dataclass(frozen=True, slots=True)
class JobEvidence:
    """Everything the judgement reads for one job.

    ``failing``: the streak's failing commits, newest first (possibly only the newest
    few). ``flaky_nearby``: commits near the streak where the job passed only on a
    rerun, newest first. ``known_flaky``: failed test ids known to be flaky (seen
    failing and passing at one commit before, or listed by the route).
    """

    failing: tuple[FailingCommit, ...]
    flaky_nearby: tuple[str, ...] = ()
    known_flaky: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Judgement:
    """The verdict with the evidence for it (strongest first) and any evidence against."""

    verdict: Verdict
    evidence: tuple[str, ...] = ()
    against: tuple[str, ...] = field(default_factory=tuple)

    @property
    def telling(self) -> bool:
        """Worth showing: a verdict, or evidence both ways; "unclear" alone says nothing."""
        return self.verdict is not Verdict.UNCLEAR or bool(self.against)


def judge(job: JobEvidence) -> Judgement:
    """Flaky or real, and why.

    1. No failed run has a class or signature yet: unclear ("no error lines yet").
    2. Every classified failed run is infrastructure: infra, naming the causes.
    3. Evidence it is real: the same signature on at least ``MIN_SAME`` failing commits
       in a row from the newest; a rerun that failed again.
    4. Evidence it is flaky: a shard passed on a rerun at a failing commit; the job
       passed only on a rerun near the streak; the failing commits show different
       signatures; every failed test is known to be flaky.
    5. Only one side has evidence: that side. Both: unclear, showing both. Neither:
       unclear (one failing commit so far, or nothing telling).
    """
    runs = [run for commit in job.failing for run in commit.runs]
    known = [run for run in runs if run.kind is not None or run.signature is not None]
    if not known:
        return Judgement(Verdict.UNCLEAR, ("no error lines yet",))
    classified = [run for run in known if run.kind is not None]
    if classified and all(run.kind is FailureClass.INFRA for run in classified):
        causes = Counter(run.rule or "unknown cause" for run in classified)
        text = ", ".join(f"{cause} ({n})" if n > 1 else cause for cause, n in causes.items())
        return Judgement(Verdict.INFRA, (f"infrastructure on every failure: {text}",))
    real = _real(job)
    flaky = _flaky(job)
    if real and not flaky:
        return Judgement(Verdict.REAL, tuple(real))
    if flaky and not real:
        return Judgement(Verdict.FLAKY, tuple(flaky))
    if real and flaky:
        return Judgement(Verdict.UNCLEAR, tuple(real), tuple(flaky))
    return Judgement(Verdict.UNCLEAR, ("only one failing commit with an error line so far",)
                     if len(job.failing) <= 1 else ("nothing telling in the logs",))


def _real(job: JobEvidence) -> list[str]:
    found: list[str] = []
    signed = [c for c in job.failing if c.signature is not None]
    if signed:
        newest = signed[0].signature
        run = 0
        for commit in signed:
            if commit.signature != newest:
                break
            run += 1
        if run >= MIN_SAME:
            every = " (every failing commit)" if run == len(job.failing) else ""
            found.append(f"the same error on {run} failing commits in a row{every}")
    again = [c.sha[:7] for c in job.failing if c.failed_again]
    if again:
        found.append(f"failed again on a rerun at {_list(again)}")
    return found


def _flaky(job: JobEvidence) -> list[str]:
    found: list[str] = []
    for commit in job.failing:
        if commit.passed_on_rerun:
            shards = _list([_shard_label(s) for s in commit.passed_on_rerun])
            found.append(f"{shards} passed on a rerun at {commit.sha[:7]}")
    if job.flaky_nearby:
        found.append(f"passed only on a rerun at {_list([s[:7] for s in job.flaky_nearby])}, "
                     "near this streak")
    signatures = [c.signature for c in job.failing if c.signature is not None]
    distinct = len(set(signatures))
    if distinct > 1:
        found.append(f"{distinct} different errors on {len(signatures)} failing commits")
    tests = {t for c in job.failing for r in c.runs for t in r.tests}
    if tests and job.known_flaky and tests <= job.known_flaky:
        noun = "test is" if len(tests) == 1 else "tests are"
        found.append(f"the failing {noun} known to be flaky ({_list(sorted(tests))})")
    return found


_SHARD = re.compile(r"\((?:[^,()]+),\s*(\d+)\s*,\s*(\d+)")


def _shard_label(name: str) -> str:
    """``test (inductor, 2, 3, linux...)`` -> ``shard 2/3``; other names are kept."""
    match = _SHARD.search(name)
    return f"shard {match.group(1)}/{match.group(2)}" if match else name


def _list(items: Sequence[str], limit: int = 3) -> str:
    shown = list(items[:limit])
    more = len(items) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")
