"""Bisect planning: which commits to test next to find the commit that broke a job.

Pure and side-effect free: the caller runs the probes and feeds their outcomes back.

Input (``BisectState``)
    ``last_good`` and ``suspects``: the regression range. Suspects are the commits in
    ``(last_good, first_bad]``, oldest first. ``last_good`` counts as one passing result
    and the last suspect as one failing result (the premises of the alert); do not also
    pass those two CI results as observations, or they count twice.
    ``observations``: every result known for the job inside the range, in any order and
    several per commit when rerun: CI results that already exist (free probes) and the
    results of the bisect's own runs. Results for commits outside the range are ignored.
    ``in_flight``: commits being tested right now. ``k``: runs per round (1..MAX_K).
    ``max_runs``/``runs_used``: the run budget (``runs_used`` counts started runs,
    including those in flight). ``confirm_runs``: extra results the culprit (fail) and
    its parent (pass) need before the culprit is named. ``max_attempts``: results one
    commit may collect before the planner gives up on it.

Output (``Plan``)
    ``status`` is ``running`` (start ``to_test``, or wait for ``in_flight`` when it is
    empty), ``found`` (``culprit`` and its ``parent`` are set) or ``failed`` (``reason``
    says why: ``range empty``, ``budget spent: 12 of 12 runs``, ``flaky: <sha> passed 2
    and failed 2 times``, ``untestable: ...``, ``inconsistent: ...``, ``no failure: ...``).
    ``candidates`` are the suspects that can still be the culprit, oldest first.

Algorithm
    1. Verdicts. Each commit's results are tallied. Inconclusive results (exit 125,
       infrastructure errors) are not votes; a commit with only those is *skipped*, like
       ``git bisect skip``, and never chosen again. Unanimous votes settle a commit; once a
       commit has disagreed with itself it is *flaky* until one side leads by
       ``FLAKY_MARGIN`` votes, and stays eligible for retests until ``max_attempts``.
    2. Interval. The culprit is the oldest suspect that fails, so it lies in
       ``(lo, hi]`` where ``hi`` is the oldest settled failure and ``lo`` the newest
       settled pass older than ``hi``. Pre-existing results shrink this before round 1.
       A settled fail older than a settled pass is an *inversion*: the commits in it that
       rest on a single vote are retested first; if none does, the bisect fails as
       ``inconsistent`` rather than guessing.
    3. Probes (k-ary, "nth-section"). The commits being tested cut ``(lo, hi]`` into
       gaps; free slots (``k`` minus runs in flight, capped by the budget) are given one at
       a time to the gap whose largest part is biggest, stopping as soon as extra probes
       would not make the largest part smaller. Within a gap the ``c`` cuts sit at the
       ``c + 1`` equal division points, moved to the nearest testable commit when a
       point is skipped, flaky-exhausted or in flight. With deterministic results the
       interval shrinks to ``ceil(size / (k + 1))`` per round, so the culprit is named in
       at most ``round_bound(n, k) = ceil(log_{k+1} n)`` rounds.
       Ranked suspects: when nothing is in flight, the most likely ranked candidate ``p``
       left in the interval is bracketed (probes at ``p``'s parent and ``p``; else ``p``
       alone, else its parent) if the remaining cuts can still keep every part within
       ``(k + 1) ** (round_bound(size, k) - 1)`` commits: the bound on rounds holds, so
       the ranking never costs a round, and a right guess leaves one candidate at once.
    4. Confirmation. When one candidate is left, it must have failed ``1 + confirm_runs``
       times and its parent passed ``1 + confirm_runs`` times. The missing reruns are the
       next probes; a rerun that disagrees turns that commit flaky, widens the interval
       again and the search resumes within budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum, StrEnum
from itertools import pairwise
from typing import Literal

MAX_K = 16
"""Most runs one round may start; more would flood the CI queue for one alert."""

FLAKY_MARGIN = 2
"""Votes one side needs over the other to settle a commit that has disagreed with itself."""

PlanStatus = Literal["running", "found", "failed"]


class Outcome(StrEnum):
    """What one run of the job at one commit said."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"  # no answer: untestable (exit 125), infra error, cancelled


@dataclass(frozen=True, slots=True)
class Observation:
    """One result of the job at one commit, from CI or from the bisect's own run."""

    sha: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class BisectState:
    """Everything the planner needs to decide the next probes; see the module docstring."""

    last_good: str
    suspects: tuple[str, ...]
    k: int = 1
    observations: tuple[Observation, ...] = ()
    in_flight: tuple[str, ...] = ()
    runs_used: int = 0
    max_runs: int = 32
    confirm_runs: int = 1
    max_attempts: int = 4
    ranked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or not 1 <= self.k <= MAX_K:
            raise ValueError(f"k must be between 1 and {MAX_K} runs per round, got {self.k!r}")
        if self.max_runs < 0 or self.runs_used < 0:
            raise ValueError("max_runs and runs_used cannot be negative")
        if self.confirm_runs < 0:
            raise ValueError(f"confirm_runs cannot be negative, got {self.confirm_runs}")
        if self.max_attempts < 1 + self.confirm_runs:
            raise ValueError(
                f"max_attempts ({self.max_attempts}) must leave room for the culprit's "
                f"{1 + self.confirm_runs} results that confirmation needs"
            )
        if len(set(self.suspects)) != len(self.suspects):
            raise ValueError("suspects must not repeat a commit")
        if self.last_good in self.suspects:
            raise ValueError(f"last_good {self.last_good} cannot also be a suspect")

    def started(self, shas: Iterable[str]) -> BisectState:
        """The state after starting runs at ``shas``: they are in flight and use budget."""
        shas = tuple(shas)
        return replace(self, in_flight=self.in_flight + shas, runs_used=self.runs_used + len(shas))

    def finished(self, sha: str, outcome: Outcome) -> BisectState:
        """The state after a run at ``sha`` reported ``outcome``: no longer in flight."""
        in_flight = list(self.in_flight)
        if sha in in_flight:
            in_flight.remove(sha)
        return replace(
            self,
            in_flight=tuple(in_flight),
            observations=(*self.observations, Observation(sha, Outcome(outcome))),
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """The planner's answer for one state; see the module docstring."""

    status: PlanStatus
    to_test: tuple[str, ...] = ()
    culprit: str | None = None
    parent: str | None = None
    reason: str | None = None
    candidates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BisectLimits:
    """Per-route caps that keep bisects from flooding CI (configured under ``bisect``)."""

    max_runs: int = 32
    max_k: int = 8
    max_concurrent_per_route: int = 2
    confirm_runs: int = 1
    max_attempts: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.max_k <= MAX_K:
            raise ValueError(f"max_k must be between 1 and {MAX_K}, got {self.max_k}")
        if self.max_runs < 1 or self.max_concurrent_per_route < 1:
            raise ValueError("max_runs and max_concurrent_per_route must be at least 1")

    @classmethod
    def from_settings(cls, settings: Mapping[str, object]) -> BisectLimits:
        """Read a route's ``bisect`` table; unknown keys are an error, not silently ignored."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown bisect settings {unknown}; known: {sorted(known)}")
        values: dict[str, int] = {}
        for key, value in settings.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"bisect.{key}: expected an integer, got {value!r}")
            values[key] = value
        return cls(**values)

    def refusal(self, k: int, active_on_route: int) -> str | None:
        """Why a new bisect with ``k`` runs per round may not start now, or None if it may."""
        if not 1 <= k <= self.max_k:
            return f"k must be between 1 and {self.max_k} on this route, got {k}"
        if active_on_route >= self.max_concurrent_per_route:
            return (
                f"{active_on_route} bisects already running on this route "
                f"(limit {self.max_concurrent_per_route})"
            )
        return None

    def state(self, last_good: str, suspects: tuple[str, ...], k: int) -> BisectState:
        """A fresh bisect state that carries these limits."""
        return BisectState(
            last_good=last_good,
            suspects=suspects,
            k=k,
            max_runs=self.max_runs,
            confirm_runs=self.confirm_runs,
            max_attempts=self.max_attempts,
        )


def round_bound(n: int, k: int) -> int:
    """``ceil(log_{k+1} n)``: rounds a k-ary bisect needs for ``n`` suspects at most.

    Integer arithmetic, because float logs misround exact powers (log(1000, 10) < 3).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    rounds, reach = 0, 1
    while reach < n:
        reach *= k + 1
        rounds += 1
    return rounds


class _Verdict(Enum):
    UNTESTED = "untested"
    SKIPPED = "skipped"  # only inconclusive results
    PASS = "pass"
    FAIL = "fail"
    FLAKY = "flaky"  # passed and failed, neither side leads by FLAKY_MARGIN


@dataclass(slots=True)
class _Tally:
    passes: int = 0
    fails: int = 0
    inconclusive: int = 0

    @property
    def attempts(self) -> int:
        return self.passes + self.fails + self.inconclusive

    @property
    def votes(self) -> int:
        return self.passes + self.fails

    @property
    def verdict(self) -> _Verdict:
        if self.votes == 0:
            return _Verdict.SKIPPED if self.inconclusive else _Verdict.UNTESTED
        if self.fails == 0 or self.passes - self.fails >= FLAKY_MARGIN:
            return _Verdict.PASS
        if self.passes == 0 or self.fails - self.passes >= FLAKY_MARGIN:
            return _Verdict.FAIL
        return _Verdict.FLAKY


@dataclass(frozen=True, slots=True)
class _Board:
    """The range as positions: 0 is last_good, 1..n the suspects, n + 1 "no failure"."""

    commits: tuple[str, ...]
    tallies: tuple[_Tally, ...] = field(repr=False)
    in_flight: frozenset[int]
    state: BisectState

    @classmethod
    def of(cls, state: BisectState) -> _Board:
        commits = (state.last_good, *state.suspects)
        index = {sha: i for i, sha in enumerate(commits)}
        tallies = [_Tally() for _ in commits]
        tallies[0].passes += 1  # premise: last_good passed
        tallies[-1].fails += 1  # premise: the first bad commit failed
        for obs in state.observations:
            i = index.get(obs.sha)
            if i is None:
                continue
            if obs.outcome is Outcome.PASS:
                tallies[i].passes += 1
            elif obs.outcome is Outcome.FAIL:
                tallies[i].fails += 1
            else:
                tallies[i].inconclusive += 1
        in_flight = frozenset(index[s] for s in state.in_flight if s in index)
        return cls(tuple(commits), tuple(tallies), in_flight, state)

    @property
    def free_slots(self) -> int:
        s = self.state
        return max(0, min(s.k - len(s.in_flight), s.max_runs - s.runs_used))

    def verdict(self, i: int) -> _Verdict:
        return self.tallies[i].verdict

    def eligible(self, i: int) -> bool:
        """Worth a (new or repeated) run: no settled answer, not skipped, attempts left."""
        return (
            i not in self.in_flight
            and self.verdict(i) in (_Verdict.UNTESTED, _Verdict.FLAKY)
            and self.tallies[i].attempts < self.state.max_attempts
        )

    def suspects_in(self, lo: int, hi: int) -> tuple[str, ...]:
        """Suspects at positions ``(lo, hi]``, leaving out last_good and the virtual end."""
        return self.commits[max(lo + 1, 1) : min(hi, len(self.commits) - 1) + 1]

    def flaky_text(self, i: int) -> str:
        t = self.tallies[i]
        return f"flaky: {self.commits[i]} passed {t.passes} and failed {t.fails} times"

    def budget_text(self) -> str:
        return f"budget spent: {self.state.runs_used} of {self.state.max_runs} runs"


def plan(state: BisectState) -> Plan:
    """Decide the next probes, or name the culprit, or say why the bisect cannot finish."""
    if not state.suspects:
        return Plan("failed", reason="range empty")
    board = _Board.of(state)
    n_end = len(board.commits)  # virtual position: "nothing in the range fails"
    passes = [i for i in range(n_end) if board.verdict(i) is _Verdict.PASS]
    fails = [i for i in range(n_end) if board.verdict(i) is _Verdict.FAIL]
    hi = min(fails, default=n_end)
    lo = max((i for i in passes if i < hi), default=-1)
    candidates = board.suspects_in(lo, hi)

    if passes and fails and min(fails) < max(passes):
        return _resolve_inversion(board, passes, fails, candidates)
    if hi == lo + 1:
        return _confirm(board, lo, hi)
    return _narrow(board, lo, hi, candidates)


def _resolve_inversion(
    board: _Board, passes: list[int], fails: list[int], candidates: tuple[str, ...]
) -> Plan:
    """A settled fail older than a settled pass: retest the single-vote commits involved."""
    newest_pass, oldest_fail = max(passes), min(fails)
    involved = [i for i in fails if i < newest_pass] + [i for i in passes if i > oldest_fail]
    shaky = sorted(i for i in involved if board.tallies[i].votes == 1)
    retest = [
        i
        for i in shaky
        if i not in board.in_flight and board.tallies[i].attempts < board.state.max_attempts
    ]
    to_test = tuple(board.commits[i] for i in retest[: board.free_slots])
    if to_test or board.state.in_flight:
        return Plan("running", to_test=to_test, candidates=candidates)
    if retest:
        return Plan("failed", reason=board.budget_text(), candidates=candidates)
    return Plan(
        "failed",
        reason=(
            f"inconsistent: {board.commits[oldest_fail]} fails but newer "
            f"{board.commits[newest_pass]} passes"
        ),
        candidates=candidates,
    )


def _confirm(board: _Board, lo: int, hi: int) -> Plan:
    """One candidate left: name it once it and its parent have repeated their results."""
    commits = board.commits
    if hi == len(commits):
        tally = board.tallies[lo]
        return Plan(
            "failed",
            reason=f"no failure: {commits[lo]} passed {tally.passes} times",
        )
    if hi == 0:
        return Plan(
            "failed",
            reason=(
                f"inconsistent: last good {commits[0]} fails; the culprit is older than the range"
            ),
        )
    culprit, parent = commits[hi], commits[lo]
    need = 1 + board.state.confirm_runs
    wanted: list[int] = []
    waiting = False
    for i, short in ((hi, board.tallies[hi].fails < need), (lo, board.tallies[lo].passes < need)):
        if not short:
            continue
        if i in board.in_flight:
            waiting = True
        elif board.tallies[i].attempts >= board.state.max_attempts:
            return Plan(
                "failed",
                reason=(
                    f"unconfirmed: {commits[i]} gave no repeat result in "
                    f"{board.tallies[i].attempts} attempts"
                ),
                candidates=(culprit,),
            )
        else:
            wanted.append(i)
    if not wanted and not waiting:
        return Plan("found", culprit=culprit, parent=parent, candidates=(culprit,))
    to_test = tuple(commits[i] for i in wanted[: board.free_slots])
    if to_test or board.state.in_flight:
        return Plan("running", to_test=to_test, candidates=(culprit,))
    return Plan(
        "failed",
        reason=f"{board.budget_text()}; {culprit} not confirmed",
        candidates=(culprit,),
    )


def _narrow(board: _Board, lo: int, hi: int, candidates: tuple[str, ...]) -> Plan:
    """Several candidates left: cut the interval with as many probes as help."""
    interior = range(lo + 1, hi)
    chosen = (_ranked_cuts(board, lo, hi, board.free_slots)
              or _choose_cuts(board, lo, hi, board.free_slots))
    if chosen:
        to_test = tuple(board.commits[i] for i in chosen)
        return Plan("running", to_test=to_test, candidates=candidates)
    if board.state.in_flight:
        return Plan("running", candidates=candidates)
    if any(board.eligible(i) for i in interior):
        return Plan("failed", reason=board.budget_text(), candidates=candidates)
    for i in interior:
        if board.verdict(i) is _Verdict.FLAKY:
            return Plan("failed", reason=board.flaky_text(i), candidates=candidates)
    skipped = sum(1 for i in interior if board.verdict(i) is _Verdict.SKIPPED)
    return Plan(
        "failed",
        reason=(
            f"untestable: {skipped} commits gave no result; the culprit is one of {len(candidates)}"
        ),
        candidates=candidates,
    )


def _choose_cuts(board: _Board, lo: int, hi: int, slots: int) -> list[int]:
    """Positions to probe in ``(lo, hi)``: k-ary cuts around the runs already in flight."""
    flying = sorted(i for i in board.in_flight if lo < i < hi)
    bounds = [lo, *flying, hi]
    gaps = [(a, b, [i for i in range(a + 1, b) if board.eligible(i)]) for a, b in pairwise(bounds)]
    cuts = _allocate([b - a for a, b, _ in gaps], [len(el) for _, _, el in gaps], slots)
    chosen: list[int] = []
    for (a, b, eligible), c in zip(gaps, cuts, strict=True):
        taken: set[int] = set()
        for j in range(1, c + 1):
            ideal = a + (j * (b - a)) // (c + 1)
            pick = min((i for i in eligible if i not in taken), key=lambda i: (abs(i - ideal), i))
            taken.add(pick)
        chosen.extend(sorted(taken))
    return chosen


def _ranked_cuts(board: _Board, lo: int, hi: int, slots: int) -> list[int]:
    """Cuts that bracket the most likely ranked candidate without costing a round, or [].

    Only at a round's start (nothing in flight in the interval) and when every interior
    commit is still testable, so the even split it competes with is the plain one.
    """
    state = board.state
    if not state.ranked or slots < 1:
        return []
    interior = range(lo + 1, hi)
    if any(i in board.in_flight for i in interior) or not all(board.eligible(i)
                                                            for i in interior):
        return []
    index = {sha: i for i, sha in enumerate(board.commits)}
    target = next((index[sha] for sha in state.ranked if lo < index.get(sha, -1) <= hi), None)
    if target is None:
        return []
    default = _choose_cuts(board, lo, hi, slots)
    allowed = max(_largest_part(lo, hi, default),
                  (state.k + 1) ** max(round_bound(hi - lo, state.k) - 1, 0))
    for required in ([target - 1, target], [target], [target - 1]):
        fixed = sorted({i for i in required if lo < i < hi})
        if not fixed or len(fixed) > slots:
            continue
        cuts = _fill(lo, hi, fixed, slots - len(fixed))
        if _largest_part(lo, hi, cuts) <= allowed:
            return cuts
    return []


def _fill(lo: int, hi: int, fixed: list[int], slots: int) -> list[int]:
    """``fixed`` cuts plus up to ``slots`` more, spent where they shrink the largest part."""
    bounds = [lo, *fixed, hi]
    sizes = [b - a for a, b in pairwise(bounds)]
    extra = _allocate(sizes, [size - 1 for size in sizes], slots)
    cuts = list(fixed)
    for (a, b), c in zip(pairwise(bounds), extra, strict=True):
        cuts += [a + (j * (b - a)) // (c + 1) for j in range(1, c + 1)]
    return sorted(cuts)


def _largest_part(lo: int, hi: int, cuts: list[int]) -> int:
    return max(b - a for a, b in pairwise([lo, *sorted(cuts), hi]))


def _allocate(sizes: list[int], limits: list[int], slots: int) -> list[int]:
    """Cuts per gap that shrink the largest part as far as ``slots`` allow, and no further.

    Giving each cut to the gap with the largest part is optimal for the min-max goal. The
    first pass learns the largest part still reducible once every slot is spent; the
    second stops on reaching it, so probes that would not shrink it spend no runs.
    Gaps without testable commits cannot be cut and are left out of both passes.
    """

    def greedy(stop_at: int) -> tuple[list[int], int]:
        cuts = [0] * len(sizes)

        def part(g: int) -> int:
            return -(-sizes[g] // (cuts[g] + 1))

        for _ in range(slots):
            open_gaps = [g for g in range(len(sizes)) if cuts[g] < limits[g]]
            if not open_gaps:
                break
            widest = max(open_gaps, key=lambda g: (part(g), -g))
            if part(widest) <= stop_at:
                break
            cuts[widest] += 1
        still_open = [part(g) for g in range(len(sizes)) if cuts[g] < limits[g]]
        return cuts, max(still_open, default=0)

    _, reachable = greedy(stop_at=0)
    cuts, _ = greedy(stop_at=reachable)
    return cuts
