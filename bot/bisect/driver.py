"""The bisect loop (plan, run probes, record results, plan again) and the probe result contract.

Backends only run commits; every decision stays in ``bot.domain.bisect_planner``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bot.domain.bisect_planner import BisectState, Outcome, Plan, plan


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a backend reports for one run of the job at one commit.

    ``detail`` is a short human reason (``exit 1``, ``timed out after 30s``); ``tail`` is
    a trimmed end of the output, shown in the thread when the probe failed.
    """

    sha: str
    outcome: Outcome
    detail: str = ""
    tail: str = ""
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Round:
    """The probes one round started, with their results, in the order they were planned."""

    number: int
    probes: tuple[ProbeResult, ...]


@dataclass(frozen=True, slots=True)
class BisectRun:
    """How a bisect ended: the final plan, every round, and the state it ended in."""

    plan: Plan
    rounds: tuple[Round, ...]
    state: BisectState

    @property
    def runs(self) -> int:
        return sum(len(r.probes) for r in self.rounds)


ProbeBatch = Callable[[Sequence[str]], Sequence[ProbeResult]]
"""Runs the job at each sha (concurrently if it can) and returns one result per sha."""


def run_bisect(
    state: BisectState,
    probe_batch: ProbeBatch,
    on_round: Callable[[Round], None] | None = None,
) -> BisectRun:
    """Drive a bisect to its end with a backend that finishes each batch before returning.

    Rounds are synchronous: all of a round's probes finish before the next plan, which
    is what the round bound assumes. Backends that report one result at a time can
    use the planner directly with ``in_flight``.
    """
    rounds: list[Round] = []
    while True:
        step = plan(state)
        if step.status != "running":
            return BisectRun(step, tuple(rounds), state)
        if not step.to_test:
            # nothing is in flight between synchronous rounds, so waiting would never end
            raise RuntimeError(f"planner asked to wait with nothing in flight: {step}")
        state = state.started(step.to_test)
        results = tuple(probe_batch(step.to_test))
        if sorted(r.sha for r in results) != sorted(step.to_test):
            raise ValueError(
                f"backend answered for {[r.sha for r in results]}, asked for {list(step.to_test)}"
            )
        for result in results:
            state = state.finished(result.sha, result.outcome)
        done = Round(len(rounds) + 1, results)
        rounds.append(done)
        if on_round is not None:
            on_round(done)
