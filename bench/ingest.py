"""Ingest benchmark: ``python -m bot replay``'s engine against a no-logic SQLite floor.

Generates a synthetic trunk (commits x ~150 sharded Inductor jobs, 1% random failures
of which half pass on a rerun, a few real breakages), writes it as NDJSON GitHub
deliveries (a push per commit, then that commit's job results), and measures:

- replay: ``bot.ingest.replay.replay`` on the file, as ``python -m bot replay`` runs it
  (deliveries parsed and checked, ingested in batches through the live path: results
  stored, cells recomputed, alerts brought up to date after every batch);
- floor: the same lines read, JSON-decoded and inserted into one plain SQLite table
  with no index and no logic, in one transaction, same PRAGMAs.

Each measurement runs in a fresh process so that its peak RSS is its own; the clock
runs from the first line read to the last write (process start, imports and the
schema are counted on neither side). Bytes per result: the replay database's used
pages (WAL checkpointed) over the results stored, with the largest tables and
indexes (``dbstat``). Two history lengths show throughput and memory do not depend
on history length.

    .venv/bin/python bench/ingest.py [--commits N] [--jobs J] [--seed S] [--repeat R]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this directory comes first on sys.path, and bench/bisect.py would
# shadow the standard library's bisect (which random imports): put the repository
# root there instead before importing anything else.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path
                             if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sqlite3  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from tests.support.trunk import Trunk, sharded  # noqa: E402

# (workflow, config, shards): 150 shard jobs in all, as in PyTorch's Inductor workflows
CONFIGS: list[tuple[str, str, int]] = [
    ("inductor", "inductor_huggingface", 5),
    ("inductor", "inductor_timm", 6),
    ("inductor", "inductor_torchbench", 6),
    ("inductor", "inductor_distributed", 2),
    ("inductor", "inductor_cpp_wrapper", 3),
    ("inductor", "dynamic_inductor_huggingface", 5),
    ("inductor", "dynamic_inductor_timm", 6),
    ("inductor", "dynamic_inductor_torchbench", 6),
    ("inductor", "aot_inductor_huggingface", 5),
    ("inductor", "aot_inductor_timm", 6),
    ("inductor", "aot_inductor_torchbench", 6),
    ("inductor", "inductor_amx", 4),
    ("inductor", "inductor_avx2", 4),
    ("inductor", "cpu_inductor_huggingface", 5),
    ("inductor", "cpu_inductor_timm", 6),
    ("inductor", "cpu_inductor_torchbench", 6),
    ("inductor-periodic", "dynamo_eager_huggingface", 5),
    ("inductor-periodic", "dynamo_eager_timm", 6),
    ("inductor-periodic", "dynamo_eager_torchbench", 6),
    ("inductor-periodic", "aot_eager_huggingface", 5),
    ("inductor-periodic", "aot_eager_timm", 6),
    ("inductor-periodic", "aot_eager_torchbench", 6),
    ("inductor-periodic", "inductor_torchbench_smoketest_perf", 4),
    ("inductor-periodic", "cudagraphs_huggingface", 5),
    ("inductor-periodic", "cudagraphs_timm", 6),
    ("inductor", "inductor_max_autotune", 5),
    ("inductor", "cpu_inductor_cpp_wrapper", 5),
    ("inductor", "inductor_halide", 4),
    ("inductor-periodic", "dynamic_aot_eager_torchbench", 6),
]


def job_names(limit: int) -> list[str]:
    names: list[str] = []
    for workflow, config, shards in CONFIGS:
        names.extend(sharded(workflow, config, shards))
    return names[:limit]


def make_trunk(commits: int, jobs: int, seed: int) -> Trunk:
    """A history with noise and a few real breakages, oldest commit first."""
    rng = random.Random(seed)
    names = job_names(jobs)
    trunk = Trunk.linear(commits, names, salt=f"bench{seed}")
    # real breakages: (first broken commit, length, shard names), some sharing a culprit
    breakages: list[tuple[int, int, list[str]]] = []
    for _ in range(max(2, commits // 100)):
        start = rng.randrange(commits // 10, commits - 5)
        victims = rng.sample(names, rng.randint(1, 4))
        breakages.append((start, rng.randint(4, 12), victims))
    for start, length, victims in breakages:
        for i in range(start, min(commits, start + length)):
            for name in victims:
                trunk.set(i, name, "failure", line="FAILED test_models.py::test_accuracy")
    for i in range(commits):
        for name in names:
            if (i, name) in trunk.runs:
                continue
            roll = rng.random()
            if roll < 0.005:
                trunk.set(i, name, "failure", line="RuntimeError: CUDA error: unspecified")
            elif roll < 0.01:
                trunk.set(i, name, "failure", "success")  # flaky: passes on rerun
            else:
                trunk.set(i, name, "success")
    return trunk


def write_ndjson(trunk: Trunk, path: Path) -> int:
    """Stream deliveries to ``path``: each push, then that commit's results. Returns results."""
    results = 0
    names = trunk.job_names
    with path.open("w") as out:
        for i in range(len(trunk.shas)):
            out.write(json.dumps(trunk.push_delivery(i, i)) + "\n")
            for name in names:
                for delivery in trunk.job_deliveries(i, name):
                    out.write(json.dumps(delivery) + "\n")
                    results += 1
    return results


# --- measured children ---------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    ``VmHWM`` belongs to the address space, which ``exec`` replaces; ``ru_maxrss``
    would also count the parent's peak from before the fork, and the parent holds the
    generated history.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_replay(ndjson: Path, db: Path) -> dict[str, Any]:
    from bot.domain.route import Route
    from bot.ingest.replay import replay
    from bot.store.db import Store

    store = Store(db)
    store.migrate()
    errors = io.StringIO()
    start = time.perf_counter()
    details, problems = replay(store, (Route(),), [ndjson], errors)
    elapsed = time.perf_counter() - start
    conn = store.db.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    results = conn.execute("SELECT count(*) FROM results").fetchone()[0]
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    used = (conn.execute("PRAGMA page_count").fetchone()[0]
            - conn.execute("PRAGMA freelist_count").fetchone()[0]) * page
    parts = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
                         "ORDER BY 2 DESC").fetchall()
    store.close()
    return {"seconds": elapsed, "peak_mb": peak_rss_mb(), "alerts": len(details),
            "problems": sum(problems.values()), "results": results, "bytes": used,
            "parts": parts}


def child_floor(ndjson: Path, db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("CREATE TABLE raw (event TEXT, repo TEXT, sha TEXT, job_id INTEGER, "
                 "workflow TEXT, name TEXT, status TEXT, conclusion TEXT, at TEXT)")
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    with ndjson.open(encoding="utf-8") as lines:
        for line in lines:
            delivery = json.loads(line)
            payload = delivery["payload"]
            if delivery["event"] == "workflow_job":
                job = payload["workflow_job"]
                row = ("workflow_job", payload["repository"]["full_name"], job["head_sha"],
                       job["id"], job["workflow_name"], job["name"], job["status"],
                       job["conclusion"], job["completed_at"])
            else:
                row = ("push", payload["repository"]["full_name"], payload["after"], None,
                       None, payload["ref"], None, None, None)
            conn.execute("INSERT INTO raw VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return {"seconds": elapsed, "peak_mb": peak_rss_mb(), "alerts": 0, "problems": 0}


def measure(mode: str, ndjson: Path, workdir: Path) -> dict[str, Any]:
    db = workdir / f"{mode}-{ndjson.stem}.db"
    for stale in workdir.glob(db.name + "*"):
        stale.unlink()
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(ndjson), str(db)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- main -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=400,
                        help="commits in the longer history; the shorter has half (default 400)")
    parser.add_argument("--jobs", type=int, default=150, help="shard jobs per commit (<= 150)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=9,
                        help="runs of each measurement; the fastest counts (default 9)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "NDJSON", "DB"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, ndjson, db = args.child
        run = child_replay if mode == "replay" else child_floor
        print(json.dumps(run(Path(ndjson), Path(db))))
        return 0

    lengths = [max(10, args.commits // 2), args.commits]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for commits in lengths:
            started = time.perf_counter()
            trunk = make_trunk(commits, args.jobs, args.seed)
            path = workdir / f"trunk{commits}.ndjson"
            results = write_ndjson(trunk, path)
            deliveries = results + commits
            del trunk
            generated = time.perf_counter() - started
            # alternated and the best of each kept: other work on the machine slows a run,
            # never speeds it up
            replays, floors = [], []
            for _ in range(args.repeat):
                replays.append(measure("replay", path, workdir))
                floors.append(measure("floor", path, workdir))
            replay = min(replays, key=lambda m: m["seconds"])
            floor = min(floors, key=lambda m: m["seconds"])
            rows.append((commits, deliveries, results, generated, replay, floor))

    jobs = min(args.jobs, len(job_names(10**6)))
    print(f"ingest benchmark: {jobs} shard jobs per commit, 1% random failures "
          f"(half flaky), seed {args.seed}; floor: the same lines into one table, one "
          f"transaction; best of {args.repeat} runs each")
    header = (f"{'commits':>7} {'results':>7} | {'replay s':>8} {'results/s':>9} "
              f"{'B/result':>8} {'peak MB':>7} {'alerts':>6} | {'floor s':>7} "
              f"{'results/s':>9} {'peak MB':>7} | {'ratio':>5}")
    print(header)
    print("-" * len(header))
    for commits, _deliveries, results, _generated, replay, floor in rows:
        ratio = replay["seconds"] / floor["seconds"]
        print(f"{commits:>7} {results:>7} | {replay['seconds']:>8.2f} "
              f"{results / replay['seconds']:>9.0f} "
              f"{replay['bytes'] / max(replay['results'], 1):>8.0f} {replay['peak_mb']:>7.1f} "
              f"{replay['alerts']:>6} | {floor['seconds']:>7.2f} "
              f"{results / floor['seconds']:>9.0f} {floor['peak_mb']:>7.1f} | {ratio:>5.2f}")
        if replay["problems"]:
            print(f"  warning: replay reported {replay['problems']} problem line(s)")
        if replay["results"] != results:
            print(f"  warning: {replay['results']} results stored of {results}")
    (_, _, _, _, short, _), (_, _, _, _, long, _) = rows
    per_result = long["results"] or 1
    largest = ", ".join(f"{name} {size / per_result:.0f}" for name, size in long["parts"][:6])
    print(f"bytes per result at {lengths[1]} commits: {long['bytes'] / per_result:.0f} "
          f"(target <= 250); largest: {largest}")
    # the target is set on the longer history (issue 17: 60,000 results); the shorter one
    # shows that the ratio does not depend on length, and its ratio is printed beside it
    target = long["seconds"] / rows[1][5]["seconds"]
    worst = max(r[4]["seconds"] / r[5]["seconds"] for r in rows)
    print(f"replay vs floor at {long['results']} results: {target:.2f} (target <= 2.00: "
          f"{'met' if target <= 2.0 else 'NOT met'}); worst over both lengths {worst:.2f}")
    growth = long["peak_mb"] - short["peak_mb"]
    print(f"replay peak memory: {short['peak_mb']:.1f} MB at {lengths[0]} commits, "
          f"{long['peak_mb']:.1f} MB at {lengths[1]} commits ({growth:+.1f} MB for "
          f"{lengths[1] / lengths[0]:.1f}x the history)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
