"""Bisect planner cost: rounds and runs to the culprit, k-ary beside plain binary search.

Deterministic: culprit positions come from a seeded generator and probes answer truly.
Run as ``python bench/bisect.py``; no network, a few seconds.
"""

from __future__ import annotations

import os
import sys

# This script shares its name with the stdlib module ``bisect``, which ``random`` imports.
# Running it puts bench/ first on sys.path, so swap that entry for the repository root
# before anything imports ``bisect``.
_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH)] + [
    entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _BENCH
]

import random  # noqa: E402
import statistics  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from bot.bisect.driver import ProbeResult, run_bisect  # noqa: E402
from bot.domain.bisect_planner import BisectState, Outcome, round_bound  # noqa: E402

SEED = 20240607
SIZES = (8, 64, 512)
KS = (1, 3, 7)
SAMPLES = 100  # culprit positions per (n, k)


def planner_cost(n: int, k: int, culprit: int, confirm_runs: int) -> tuple[int, int]:
    """Rounds and runs the planner needs to name ``culprit`` among ``n`` suspects."""
    suspects = tuple(f"c{i}" for i in range(n))
    index = {sha: i for i, sha in enumerate(suspects)}

    def probe_batch(shas: Sequence[str]) -> list[ProbeResult]:
        return [
            ProbeResult(sha, Outcome.FAIL if index.get(sha, -1) >= culprit else Outcome.PASS)
            for sha in shas
        ]

    state = BisectState("good", suspects, k=k, max_runs=10**6, confirm_runs=confirm_runs)
    run = run_bisect(state, probe_batch)
    assert run.plan.culprit == suspects[culprit], run.plan
    return len(run.rounds), run.runs


def binary_search_cost(n: int, culprit: int) -> int:
    """Runs (= rounds) of textbook binary search over ``(last_good, first_bad]``."""
    lo, hi, runs = -1, n - 1, 0  # lo passes, hi fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        runs += 1
        if mid >= culprit:
            hi = mid
        else:
            lo = mid
    assert hi == culprit
    return runs


def spread(values: list[int]) -> str:
    return f"{statistics.fmean(values):5.2f} / {max(values):3d}"


def main() -> None:
    rng = random.Random(SEED)
    header = (
        f"{'n':>4} {'k':>2} {'bound':>5}  {'rounds mean/max':>15}  {'runs mean/max':>15}"
        f"  {'+confirm rounds':>15}  {'+confirm runs':>15}  {'binary rounds=runs':>18}"
    )
    print(f"bisect planner, {SAMPLES} seeded culprit positions per row (seed {SEED})")
    print(header)
    print("-" * len(header))
    for n in SIZES:
        culprits = [rng.randrange(n) for _ in range(SAMPLES)]
        binary = [binary_search_cost(n, c) for c in culprits]
        for k in KS:
            plain = [planner_cost(n, k, c, confirm_runs=0) for c in culprits]
            confirmed = [planner_cost(n, k, c, confirm_runs=1) for c in culprits]
            columns = (
                spread([rounds for rounds, _ in plain]),
                spread([runs for _, runs in plain]),
                spread([rounds for rounds, _ in confirmed]),
                spread([runs for _, runs in confirmed]),
            )
            print(
                f"{n:>4} {k:>2} {round_bound(n, k):>5}"
                + "".join(f"  {column:>15}" for column in columns)
                + f"  {spread(binary):>18}"
            )


if __name__ == "__main__":
    main()
