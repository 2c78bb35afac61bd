"""``python -m bot bisect``: bisect a local checkout from the shell with the local backend.

Same planner and driver as the bot's bisects, so a sheriff can reproduce one by hand.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

from bot.bisect.driver import ProbeResult, Round, run_bisect
from bot.bisect.local import (
    GitError,
    LocalBackend,
    check_repository,
    commit_info,
    commits_between,
    is_ancestor,
    resolve_commit,
)
from bot.domain.bisect_planner import MAX_K, BisectState, Outcome, round_bound

EXIT_FOUND = 0
EXIT_NO_CULPRIT = 1
EXIT_USAGE = 2

USAGE_EXAMPLE = "python -m bot bisect --repo ~/src --good abc123 --bad def456 --k 3 -- make test"


def register(subparsers: Any) -> None:
    """Add the ``bisect`` command to ``python -m bot``."""
    parser = subparsers.add_parser(
        "bisect",
        help="find the commit that broke a command in a local checkout",
        description=(
            "Run CMD at commits between --good and --bad (each in its own git worktree) "
            "and print the first commit where it fails. Exit status of CMD: 0 pass, "
            "125 untestable, anything else fail."
        ),
        epilog=f"example: {USAGE_EXAMPLE}",
    )
    parser.add_argument("--repo", required=True, type=Path, help="git checkout (left untouched)")
    parser.add_argument("--good", required=True, help="a commit where CMD passes")
    parser.add_argument("--bad", required=True, help="a newer commit where CMD fails")
    parser.add_argument("--k", type=int, default=1, help=f"runs per round, 1..{MAX_K} (default 1)")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds per run before it counts as a fail"
    )
    parser.add_argument(
        "--max-runs", type=int, default=None, help="run budget (default: enough for a clean bisect)"
    )
    parser.add_argument(
        "--confirm",
        type=int,
        default=1,
        help="extra runs of the culprit and its parent before naming it (0 to skip)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...")
    parser.set_defaults(func=bisect_command)


def bisect_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the bisect; 0 when the culprit is found, 1 when not, 2 for bad arguments."""
    out = out or sys.stdout
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    problem = _argument_problem(args, command)
    if problem:
        return _usage_error(problem)
    repo: Path = args.repo.expanduser()
    try:
        check_repository(repo)
        good = resolve_commit(repo, args.good)
        bad = resolve_commit(repo, args.bad)
        if not is_ancestor(repo, good, bad):
            return _usage_error(f"--good {args.good} is not an ancestor of --bad {args.bad}")
        suspects = commits_between(repo, good, bad)
    except GitError as exc:
        return _usage_error(str(exc))

    max_runs = args.max_runs
    if max_runs is None:
        # a clean k-ary bisect, the confirmation reruns, and a few retests for flakes
        max_runs = args.k * round_bound(len(suspects), args.k) + 2 * args.confirm + 4
    state = BisectState(
        last_good=good,
        suspects=suspects,
        k=args.k,
        max_runs=max_runs,
        confirm_runs=args.confirm,
        max_attempts=max(4, 2 + args.confirm),
    )
    backend = LocalBackend(repo, command, timeout=args.timeout, max_parallel=args.k)
    print(
        f"bisecting {len(suspects)} commits after {good[:12]} up to {bad[:12]}, "
        f"{args.k} per round (at most {round_bound(len(suspects), args.k)} rounds "
        f"+ confirmation), budget {max_runs} runs",
        file=out,
    )
    run = run_bisect(state, backend.probe_batch, on_round=lambda r: _print_round(repo, r, out))
    final = run.plan
    if final.status == "found" and final.culprit:
        info = commit_info(repo, final.culprit)
        print(f"culprit: {info.sha}  {info.title}  ({info.author})", file=out)
        print(f"probes: {run.runs} runs in {len(run.rounds)} rounds", file=out)
        return EXIT_FOUND
    print(f"no culprit: {final.reason}", file=sys.stderr)
    if final.candidates:
        shown = ", ".join(sha[:12] for sha in final.candidates[:10])
        more = f" and {len(final.candidates) - 10} more" if len(final.candidates) > 10 else ""
        print(f"remaining suspects: {shown}{more}", file=sys.stderr)
    return EXIT_NO_CULPRIT


def _argument_problem(args: argparse.Namespace, command: list[str]) -> str | None:
    if not command:
        return f"no command given; put it after --, e.g. {USAGE_EXAMPLE}"
    if not 1 <= args.k <= MAX_K:
        return f"--k must be between 1 and {MAX_K}, got {args.k}"
    if args.timeout <= 0:
        return f"--timeout must be positive, got {args.timeout:g}"
    if args.confirm < 0:
        return f"--confirm cannot be negative, got {args.confirm}"
    if args.max_runs is not None and args.max_runs < 1:
        return f"--max-runs must be at least 1, got {args.max_runs}"
    program = command[0]
    # a bare name must be on PATH; paths with a slash may only exist inside the worktree
    if "/" not in program and shutil.which(program) is None:
        return f"command not found: {program}"
    return None


def _usage_error(message: str) -> int:
    print(f"bisect: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _print_round(repo: Path, done: Round, out: TextIO) -> None:
    print(f"round {done.number}:", file=out)
    for probe in done.probes:
        _print_probe(repo, probe, out)


def _print_probe(repo: Path, probe: ProbeResult, out: TextIO) -> None:
    try:
        title = commit_info(repo, probe.sha).title
    except GitError:
        title = ""
    print(
        f"  {probe.sha[:12]}  {probe.outcome.value:<12}  {probe.detail:<24}  "
        f"{probe.seconds:6.1f}s  {title}",
        file=out,
    )
    if probe.outcome is Outcome.FAIL and probe.tail:
        for line in probe.tail.splitlines():
            print(f"      | {line}", file=out)
