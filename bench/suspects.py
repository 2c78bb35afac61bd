"""Suspect ranking: how often the top-ranked suspect is the culprit, and the bisect rounds
saved when the ranking guides the probes.

Synthetic incidents, seeded: a regression range of 4..64 commits in a PyTorch-shaped tree;
the culprit touches the file that breaks, and the failing job's log (written like a CI log)
names it as the failure shows it (kinds below); decoys touch random files: 1% the very
file that broke, 24% another file of its directory, 20% the route's code area, 5% the
failing test's file, the rest 1..3 files anywhere (12 directories of 30 files). The log goes through
the bot's own rules: key lines, clues, ranking, then the bisect planner (k = 3 and binary
search, with confirmation) with and without the ranking.

    .venv/bin/python bench/suspects.py [--incidents 400] [--json]
"""

from __future__ import annotations

import os
import sys

# bench/bisect.py shadows the stdlib module ``bisect`` (which ``random`` imports) when this
# script runs with bench/ first on sys.path: swap that entry for the repository root.
_BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [os.path.dirname(_BENCH)] + [
    entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _BENCH
]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

from bot.domain.bisect_planner import BisectState, Outcome, plan, round_bound  # noqa: E402
from bot.domain.failure_lines import extract  # noqa: E402
from bot.domain.suspects import Change, clues_from, preferred, rank, standout  # noqa: E402

SEED = 20251209
AREA = ("torch/_inductor/**",)
TREE = {
    "torch/_inductor": ["scheduler.py", "ir.py", "lowering.py", "graph.py", "utils.py",
                        "config.py", "decomposition.py", "select_algorithm.py"],
    "torch/_inductor/codegen": ["triton.py", "cpp.py", "wrapper.py", "simd.py", "common.py"],
    "torch/_inductor/fx_passes": ["post_grad.py", "pre_grad.py", "pattern_matcher.py"],
    "torch/_dynamo": ["symbolic_convert.py", "guards.py", "variables.py", "eval_frame.py"],
    "torch/fx": ["graph.py", "node.py", "proxy.py"],
    "aten/src/ATen/native": ["Convolution.cpp", "Linear.cpp", "TensorShape.cpp"],
    "aten/src/ATen/native/cuda": ["Reduce.cu", "Loss.cu"],
    "c10/core": ["TensorImpl.cpp", "DispatchKey.cpp"],
    "test/inductor": ["test_torchinductor.py", "test_pattern_matcher.py", "test_cpu_repro.py"],
    "test/dynamo": ["test_misc.py", "test_repros.py"],
    "docs/source": ["index.rst", "torch.compiler.rst"],
    ".github/workflows": ["inductor.yml", "trunk.yml"],
}
# pad every directory to 30 files: PyTorch has thousands, so two random changes rarely
# touch one file by chance (the 2% of decoys that do are drawn on purpose below)
for _directory, _names in TREE.items():
    _ext = _names[0].rsplit(".", 1)[-1]
    _names += [f"module_{i}.{_ext}" for i in range(30 - len(_names))]
FILES = [f"{d}/{f}" for d, names in TREE.items() for f in names]
PYTHON_CODE = [f for f in FILES if f.endswith(".py") and not f.startswith("test/")]
KINDS = ("traceback", "outer frame", "test file only", "compiler error", "nothing named")
KS = (3, 1)


@dataclass(frozen=True)
class Incident:
    kind: str
    changes: tuple[Change, ...]  # oldest first; the culprit among them
    culprit: int
    log: str


def _log(*lines: str) -> str:
    return "".join(f"2025-12-09T12:00:00.0000000Z {line}\n" for line in lines)


def incident(rng: random.Random, kind: str) -> Incident:
    """One regression range, its culprit, and the failing job's log."""
    n = rng.randint(4, 64)
    culprit = rng.randrange(n)
    test_file = rng.choice(TREE["test/inductor"])
    test_id = f"inductor/{test_file}::GPUTests::test_case_{rng.randint(1, 999)}_cuda"
    if kind == "compiler error":
        broken = rng.choice([f for f in FILES if f.endswith((".cpp", ".cu"))])
        log = _log(f"/var/lib/jenkins/workspace/{broken}:{rng.randint(10, 900)}:5: error: "
                   "'helper' was not declared in this scope",
                   "ninja: build stopped: subcommand failed.",
                   "##[error]Process completed with exit code 1.")
    else:
        broken = rng.choice(PYTHON_CODE)
        inner = broken if kind == "traceback" else rng.choice(
            ["torch/_inductor/utils.py", "torch/_dynamo/eval_frame.py"])
        frames = ["torch/_dynamo/eval_frame.py", broken, inner] if kind == "outer frame" \
            else ["torch/_dynamo/eval_frame.py", inner]
        frame_lines = [f'  File "/opt/conda/lib/python3.10/site-packages/{f}", line '
                       f'{rng.randint(10, 3000)}, in f' for f in dict.fromkeys(frames)]
        error = "RuntimeError: bad tiling for node buf3"
        if kind in ("test file only", "nothing named"):
            frame_lines = []
            error = "AssertionError: Tensor-likes are not close!"
        shown = test_id if kind != "nothing named" else "BertForMaskedLM"
        log = _log("Traceback (most recent call last):" if frame_lines else "", *frame_lines,
                   error, f"FAILED [1.2s] {shown} - {error}" if kind != "nothing named"
                   else "Error: 1 models have accuracy status regressed: BertForMaskedLM",
                   "##[error]Process completed with exit code 1.")
        if kind == "test file only":
            broken = f"test/inductor/{test_file}" if rng.random() < 0.5 else broken
    changes: list[Change] = []
    for i in range(n):
        if i == culprit:
            files = [broken, *rng.sample(FILES, rng.randint(0, 2))]
            if kind == "test file only":
                files.append(f"test/inductor/{test_file}")  # the change and its test
            changes.append(Change(f"{i:040x}", f"[inductor] change {i}", files=tuple(files)))
            continue
        roll = rng.random()
        if roll < 0.01:  # touches the very file that broke, harmlessly
            files = [broken]
        elif roll < 0.25:  # another file of the broken file's directory
            directory = broken.rsplit("/", 1)[0]
            names = [f"{directory}/{f}" for f in TREE.get(directory, [])
                     if f"{directory}/{f}" != broken]
            files = [rng.choice(names or FILES)]
        elif roll < 0.45:  # the route's code area
            files = [rng.choice([f for f in FILES if f.startswith("torch/_inductor/")])]
        elif roll < 0.5:  # adds a test to the failing test's file
            files = [f"test/inductor/{test_file}"]
        else:
            files = rng.sample(FILES, rng.randint(1, 3))
        changes.append(Change(f"{i:040x}", f"change {i}", files=tuple(files)))
    return Incident(kind, tuple(changes), culprit, log)


def bisect_rounds(n: int, culprit: int, k: int, ranked: Sequence[str]) -> int:
    """Rounds to a confirmed culprit with true answers (the planner, as the bot runs it)."""
    shas = tuple(f"{i:040x}" for i in range(n))
    index = {sha: i for i, sha in enumerate(shas)}
    state = BisectState("good", shas, k=k, max_runs=10**6, confirm_runs=1,
                        ranked=tuple(ranked))
    rounds = 0
    while True:
        step = plan(state)
        if step.status != "running":
            assert step.culprit == shas[culprit], step
            return rounds
        rounds += 1
        state = state.started(step.to_test)
        for sha in step.to_test:
            state = state.finished(sha, Outcome.FAIL if index.get(sha, -1) >= culprit
                                   else Outcome.PASS)


def measure(incidents: int) -> dict[str, dict[str, float]]:
    rng = random.Random(SEED)
    results: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        top1 = top3 = claimed = claimed_right = 0
        rounds: dict[int, list[int]] = {k: [] for k in KS}
        guided: dict[int, list[int]] = {k: [] for k in KS}
        worse = 0
        for _ in range(incidents):
            case = incident(rng, kind)
            ranking = rank(case.changes, clues_from([extract(case.log)]), AREA)
            culprit_sha = case.changes[case.culprit].sha
            top1 += ranking[0].sha == culprit_sha
            top3 += culprit_sha in [s.sha for s in ranking[:3]]
            if standout(ranking) is not None:
                claimed += 1
                claimed_right += ranking[0].sha == culprit_sha
            order = {c.sha: i for i, c in enumerate(case.changes)}
            favoured = [sha for sha in preferred(ranking) if sha in order]
            n = len(case.changes)
            for k in KS:
                plain = bisect_rounds(n, case.culprit, k, ())
                led = bisect_rounds(n, case.culprit, k, favoured)
                bound = round_bound(n, k) + (2 if k == 1 else 1)
                assert led <= bound, (kind, n, k, led, bound)
                worse += led > plain
                rounds[k].append(plain)
                guided[k].append(led)
        results[kind] = {
            "top1": top1 / incidents, "top3": top3 / incidents,
            "standout": claimed / incidents,
            "standout_right": claimed_right / claimed if claimed else 0.0,
            **{f"rounds_k{k}": statistics.mean(rounds[k]) for k in KS},
            **{f"guided_k{k}": statistics.mean(guided[k]) for k in KS},
            "worse": worse,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=400, help="incidents per kind")
    parser.add_argument("--json", action="store_true", help="also print a JSON summary line")
    args = parser.parse_args(argv)
    results = measure(args.incidents)
    print(f"{args.incidents} incidents per kind, 4..64 suspects each, seed {SEED}\n")
    print(f"{'what the log names':<16} | top-1 | top-3 | stands out (right) | "
          "rounds k=3: plain -> guided | k=1: plain -> guided | "
          f"guided slower (of {args.incidents * len(KS)} bisects)")
    for kind, r in results.items():
        print(f"{kind:<16} | {r['top1']:5.0%} | {r['top3']:5.0%} | "
              f"{r['standout']:5.0%} ({r['standout_right']:4.0%})     | "
              f"{r['rounds_k3']:.2f} -> {r['guided_k3']:.2f}"
              f"{'':14}| {r['rounds_k1']:.2f} -> {r['guided_k1']:.2f}"
              f"{'':8}| {int(r['worse'])}")
    if args.json:
        print("JSON " + json.dumps({kind: {k: round(v, 3) for k, v in r.items()}
                                    for kind, r in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
