"""Every benchmark in turn (``make bench``), then the README's table of figures.

Each bench runs as its own process and prints its full table here; the figures the
README keeps are picked from their output (the JSON summary line where a bench has
one) into a Markdown table, with the command that produced each.

    .venv/bin/python bench/run_all.py [--load-seconds 20] [--commits 35000]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = ".venv/bin/python"


def run(args: list[str]) -> str:
    """Run one bench, echoing its output, and return that output."""
    print(f"\n$ {PY} {' '.join(args)}", flush=True)
    started = time.monotonic()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          check=False)
    shown = "\n".join(line for line in done.stdout.splitlines() if not line.startswith("JSON "))
    print(shown)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        print(f"(exit status {done.returncode})")
    print(f"({time.monotonic() - started:.0f} s)", flush=True)
    return done.stdout


def summary(output: str) -> Any:
    lines = [line[5:] for line in output.splitlines() if line.startswith("JSON ")]
    return json.loads(lines[-1]) if lines else None


def ingest_rows(output: str) -> list[list[str]]:
    """The data rows of bench/ingest.py's table, split into cells."""
    rows = []
    for line in output.splitlines():
        cells = line.replace("|", " ").split()
        if len(cells) == 10 and cells[0].isdigit():
            rows.append(cells)
    return rows


def bisect_rows(output: str) -> dict[tuple[int, int], list[str]]:
    """(n, k) -> the row of bench/bisect.py's table, numbers only."""
    rows = {}
    for line in output.splitlines():
        numbers = re.findall(r"\d+(?:\.\d+)?", line)
        if len(numbers) == 13 and line.strip()[0].isdigit():
            rows[(int(numbers[0]), int(numbers[1]))] = numbers
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-seconds", type=int, default=20)
    parser.add_argument("--commits", type=int, default=35_000, help="history for memory.py")
    args = parser.parse_args(argv)

    commands = {
        "ingest": ["bench/ingest.py"],
        "bisect": ["bench/bisect.py"],
        "load": ["bench/load.py", "--seconds", str(args.load_seconds), "--json"],
        "memory": ["bench/memory.py", "--commits", str(args.commits), "--json"],
        "messages": ["bench/messages.py", "--json"],
        "suspects": ["bench/suspects.py", "--json"],
    }
    out = {name: run(argv_) for name, argv_ in commands.items()}
    shown = {name: f"`{PY} {' '.join(a for a in argv_ if a != '--json')}`"
             for name, argv_ in commands.items()}
    table: list[tuple[str, str, str]] = []

    ingest = ingest_rows(out["ingest"])
    if ingest:
        commits, deliveries, _, replay_rate, replay_mb, _, _, floor_rate, _, ratio = ingest[-1]
        table.append((f"Ingest throughput ({int(commits):,} commits x 150 jobs, "
                      f"{int(deliveries):,} deliveries, one transaction each)",
                      f"{int(replay_rate):,} results/s; plain-SQLite floor "
                      f"{int(floor_rate):,}/s ({ratio}x)", shown["ingest"]))
        table.append(("Ingest peak memory (replay)",
                      f"{replay_mb} MB at {int(commits):,} commits, "
                      f"{ingest[0][4]} MB at {int(ingest[0][0]):,}", shown["ingest"]))

    load = summary(out["load"])
    if load:
        table.append((f"Webhooks at {load['rate']:g}/s for {load['seconds']:g} s "
                      "(+ commands and clicks)",
                      f"{load['achieved_per_s']}/s sent, {load['five_xx']} 5xx, "
                      f"{load['stored']:,} of {load['accepted']:,} stored; response p50 "
                      f"{load['webhook_p50_ms']} ms, p99 {load['webhook_p99_ms']} ms",
                      shown["load"]))
        table.append(("Deciding webhook -> Slack parent (1 post/s/channel)",
                      f"p50 {load['to_slack_p50_s']:.2f} s, p99 {load['to_slack_p99_s']:.2f} s "
                      f"over {load['parents']} alerts", shown["load"]))
        table.append(("Slash command under that load",
                      f"ack p99 {load['command_ack_p99_ms']} ms (max "
                      f"{load['command_ack_max_ms']} ms); answer p99 "
                      f"{load['command_answer_p99_ms']} ms; over 3 s: {load['over_3s']}",
                      shown["load"]))

    memory = summary(out["memory"])
    if memory:
        table.append((f"A year of history ({memory['commits']:,} commits, "
                      f"{memory['results']:,} results)",
                      f"peak RSS {memory['peak_mb']} MB, database {memory['db_mb']:,.0f} MB, "
                      f"ingested at {memory['results_per_s']:,} results/s in batches",
                      shown["memory"]))
        table.append(("One more result after that year",
                      f"{memory['one_more_late_ms']} ms (at 1,000 commits: "
                      f"{memory['one_more_early_ms']} ms)", shown["memory"]))

    for incident in summary(out["messages"]) or []:
        table.append((f"Slack messages: {incident['name']}",
                      f"{incident['parents']} parent{'s' if incident['parents'] != 1 else ''}, "
                      f"{incident['edits']} edits, "
                      f"{incident['replies']} thread replies ({incident['results']:,} results, "
                      f"{incident['events']} timeline events)", shown["messages"]))

    bisect = bisect_rows(out["bisect"])
    for n in (64, 512):
        if (n, 1) in bisect and (n, 3) in bisect:
            binary, k3 = bisect[(n, 1)], bisect[(n, 3)]
            table.append((f"Bisect rounds, {n} suspects",
                          f"k=3: {float(k3[3]):g} rounds ({float(k3[7]):g} with confirmation, "
                          f"{float(k3[9]):g} runs); binary search {float(binary[11]):g}",
                          shown["bisect"]))

    suspects = summary(out["suspects"])
    for kind, figures in (suspects or {}).items():
        table.append((f"Suspect ranking, the log names {kind} (4..64 suspects)",
                      f"top-1 {figures['top1']:.0%}, top-3 {figures['top3']:.0%}; bisect "
                      f"rounds k=3 {figures['rounds_k3']:.2f} -> {figures['guided_k3']:.2f} "
                      f"guided, binary {figures['rounds_k1']:.2f} -> "
                      f"{figures['guided_k1']:.2f}", shown["suspects"]))

    print(f"\nREADME table ({date.today().isoformat()}):\n")
    print("| figure | value | command |")
    print("| --- | --- | --- |")
    for figure, value, command in table:
        print(f"| {figure} | {value} | {command} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
