"""Memory with a year of trunk history: about 35,000 commits through the Ingestor, in batches.

Every commit gets the Inductor jobs that run on each push, and every twelfth commit the
periodic ones; 0.5% of results fail at random and 0.5% are flaky, and every few hundred
commits a real breakage opens an alert that later resolves. History is generated as it
is ingested (nothing is kept in memory here), so the process's resident memory is the
bot's own. Printed at each tenth of the way: throughput, RSS, peak RSS and database
size; at the end, the cost of one more result on a small history and on the full one.

    .venv/bin/python bench/memory.py [--commits 35000] [--jobs 40] [--periodic 60]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/bisect.py would shadow the
# standard library's bisect: put the repository root there instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path
                             if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from bot.domain.model import Commit, JobResult  # noqa: E402
from bot.domain.route import Route  # noqa: E402
from bot.ingest.pipeline import Ingestor  # noqa: E402
from bot.store.db import Store  # noqa: E402
from tests.support.trunk import sharded  # noqa: E402

REPO = "pytorch/pytorch"
START = datetime(2025, 11, 21, tzinfo=UTC)
SPACING = timedelta(minutes=15)  # ~35,000 commits a year
PUSH_CONFIGS = [("inductor_huggingface", 5), ("inductor_timm", 6), ("inductor_torchbench", 6),
                ("dynamic_inductor_huggingface", 5), ("dynamic_inductor_timm", 6),
                ("dynamic_inductor_torchbench", 6), ("inductor_distributed", 2),
                ("inductor_cpp_wrapper", 3), ("aot_inductor_huggingface", 5)]
PERIODIC_CONFIGS = [("dynamo_eager_huggingface", 5), ("dynamo_eager_timm", 6),
                    ("dynamo_eager_torchbench", 6), ("aot_eager_huggingface", 5),
                    ("aot_eager_timm", 6), ("aot_eager_torchbench", 6),
                    ("cudagraphs_huggingface", 5), ("cudagraphs_timm", 6),
                    ("cudagraphs_torchbench", 6), ("max_autotune_huggingface", 5),
                    ("max_autotune_timm", 6)]
PERIODIC_EVERY = 12


def names(workflow: str, configs: list[tuple[str, int]], limit: int) -> list[str]:
    """Whole configs (every shard of each) while they fit in ``limit`` shard jobs.

    A config cut short would name shards that never report: its cells would stay
    pending forever, which no real history looks like.
    """
    out: list[str] = []
    for config, shards in configs:
        if len(out) + shards > limit:
            break
        out.extend(sharded(workflow, config, shards))
    return out


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class History:
    """Generates the year commit by commit, deterministically from the seed."""

    push_jobs: list[str]
    periodic_jobs: list[str]
    seed: int

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.job_id = 10_000_000
        self.broken: dict[str, int] = {}  # job name -> last broken commit index

    def sha(self, index: int) -> str:
        return hashlib.sha1(f"year-{self.seed}-{index}".encode()).hexdigest()

    def commit(self, index: int) -> Commit:
        return Commit(self.sha(index), title=f"Change {index} (#{100000 + index})",
                      author=f"dev{index % 97}", pr_number=100000 + index,
                      time=START + SPACING * index)

    def rerun(self, index: int, full: str) -> JobResult:
        """A passing rerun (attempt 2) of one shard job at commit ``index``."""
        workflow, _, job_name = full.partition(" / ")
        self.job_id += 1
        done = START + SPACING * index + timedelta(hours=2)
        return JobResult(repo=REPO, sha=self.sha(index), workflow=workflow, job_name=job_name,
                         job_id=self.job_id, status="completed", conclusion="success",
                         run_id=5_000_000 + index, attempt=2, branch="main",
                         started_at=done - timedelta(minutes=40), completed_at=done)

    def results(self, index: int) -> Iterator[JobResult]:
        if index % 400 == 200:  # a real breakage: a few shards fail for a while
            for name in self.rng.sample(self.push_jobs, self.rng.randint(1, 3)):
                self.broken[name] = index + self.rng.randint(3, 12)
        jobs = self.push_jobs + (self.periodic_jobs if index % PERIODIC_EVERY == 0 else [])
        done = START + SPACING * index + timedelta(hours=1)
        for full in jobs:
            workflow, _, job_name = full.partition(" / ")
            if self.broken.get(full, -1) >= index:
                conclusions = ["failure"]
            else:
                roll = self.rng.random()
                conclusions = (["failure"] if roll < 0.005 else
                               ["failure", "success"] if roll < 0.01 else ["success"])
            for attempt, conclusion in enumerate(conclusions, start=1):
                self.job_id += 1
                yield JobResult(
                    repo=REPO, sha=self.sha(index), workflow=workflow, job_name=job_name,
                    job_id=self.job_id, status="completed", conclusion=conclusion,
                    run_id=5_000_000 + index, attempt=attempt, branch="main",
                    html_url=f"https://github.com/{REPO}/actions/runs/1/job/{self.job_id}",
                    started_at=done - timedelta(minutes=40), completed_at=done,
                    failure_lines=("FAILED test_models.py::test_accuracy",)
                    if conclusion == "failure" else ())


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def db_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20


def one_more(ingestor: Ingestor, history: History, clock: Clock, newest: int,
             repeats: int = 21) -> float:
    """Median milliseconds to ingest one more result (a rerun at the newest commit).

    One call per result, as one webhook each would be; the median of a few hides a WAL
    checkpoint that happens to land on one of them.
    """
    clock.now = START + SPACING * newest + timedelta(hours=2)
    times = []
    for n in range(repeats):
        rerun = history.rerun(newest, history.push_jobs[n % len(history.push_jobs)])
        start = time.perf_counter()
        ingestor.results([rerun])
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=35_000)
    parser.add_argument("--jobs", type=int, default=40, help="shard jobs on every push")
    parser.add_argument("--periodic", type=int, default=60,
                        help=f"periodic shard jobs, every {PERIODIC_EVERY}th commit")
    parser.add_argument("--batch", type=int, default=5, help="commits per ingest batch")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="also print a JSON summary line")
    args = parser.parse_args(argv)

    history = History(names("inductor", PUSH_CONFIGS, args.jobs),
                      names("inductor-periodic", PERIODIC_CONFIGS, args.periodic), args.seed)
    per_commit = len(history.push_jobs) + len(history.periodic_jobs) / PERIODIC_EVERY
    print(f"memory benchmark: {args.commits} commits, {len(history.push_jobs)} shard jobs per "
          f"push + {len(history.periodic_jobs)} periodic every {PERIODIC_EVERY}th commit "
          f"(~{per_commit:.0f} results per commit), batches of {args.batch} commits")
    header = (f"{'commits':>7} {'results':>9} {'alerts':>6} {'seconds':>7} {'results/s':>9} "
              f"{'RSS MB':>7} {'peak MB':>7} {'DB MB':>7}")
    print(header)
    print("-" * len(header))
    summary: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "year.db"
        store = Store(path)
        store.migrate()
        clock = Clock()
        ingestor = Ingestor(store, (Route(),), clock)
        results = 0
        started = time.perf_counter()
        step = max(args.batch, args.commits // 10)
        early_ms: float | None = None
        for first in range(0, args.commits, args.batch):
            last = min(args.commits, first + args.batch)
            batch = [history.commit(i) for i in range(first, last)]
            clock.now = START + SPACING * last + timedelta(hours=1)
            ingestor.commits(REPO, "main", batch)
            batch_results = [r for i in range(first, last) for r in history.results(i)]
            ingestor.results(batch_results)
            results += len(batch_results)
            if early_ms is None and last >= 1000:
                early_ms = one_more(ingestor, history, clock, last - 1)
            if last % step < args.batch or last == args.commits:
                elapsed = time.perf_counter() - started
                alerts = store.db.execute("SELECT count(*) FROM alerts").fetchone()[0]
                print(f"{last:>7} {results:>9} {alerts:>6} {elapsed:>7.1f} "
                      f"{results / elapsed:>9.0f} {vm_kb('VmRSS') / 1024:>7.1f} "
                      f"{vm_kb('VmHWM') / 1024:>7.1f} {db_mb(path):>7.1f}")
        peak_before = vm_kb("VmHWM") / 1024
        late_ms = one_more(ingestor, history, clock, args.commits - 1)
        peak_after = vm_kb("VmHWM") / 1024
        elapsed = time.perf_counter() - started
        summary = {"commits": args.commits, "results": results, "seconds": round(elapsed, 1),
                   "results_per_s": round(results / elapsed), "peak_mb": round(peak_after, 1),
                   "db_mb": round(db_mb(path), 1), "one_more_early_ms": round(early_ms or 0, 1),
                   "one_more_late_ms": round(late_ms, 1)}
        store.close()
    print(f"one more result (a rerun at the newest commit, median of 21): {early_ms or 0:.1f} ms "
          f"at 1,000 commits, "
          f"{late_ms:.1f} ms at {args.commits:,}; peak RSS {peak_before:.1f} -> "
          f"{peak_after:.1f} MB")
    if args.json:
        print("JSON " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
