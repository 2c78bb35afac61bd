"""Local bisect backend and ``bisect`` command, on a git repository generated per test."""

from __future__ import annotations

import argparse
import importlib.util
import os
import select
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.bisect import cli
from bot.bisect.driver import run_bisect
from bot.bisect.local import (
    GitError,
    LocalBackend,
    commit_info,
    commits_between,
    output_tail,
    resolve_commit,
)
from bot.domain.bisect_planner import BisectState, Outcome

ROOT = Path(__file__).resolve().parents[2]
CHECK = ["sh", "-c", 'echo "state is $(cat state)"; test -e skip && exit 125; grep -qx fine state']
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada Lovelace",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass(frozen=True)
class Repo:
    path: Path
    shas: tuple[str, ...]  # shas[0] is the known good root; the rest are the suspects
    culprit: int  # index into shas

    def git(self, *args: str) -> str:
        return git(self.path, *args)


def git(path: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    done = subprocess.run(
        ["git", "-C", str(path), *args], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout


def make_repo(
    path: Path, commits: int, culprit: int, untestable: frozenset[int] = frozenset()
) -> Repo:
    """``commits`` commits; ``state`` reads "fine" before ``culprit`` and "broken" from it."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    shas = []
    for i in range(commits):
        (path / "state").write_text("broken\n" if i >= culprit else "fine\n")
        skip = path / "skip"
        if i in untestable:
            skip.write_text("")
        elif skip.exists():
            skip.unlink()
        git(path, "add", "-A")
        git(path, "commit", "-q", "--allow-empty", "-m", f"change {i}")
        shas.append(git(path, "rev-parse", "HEAD").strip())
    return Repo(path, tuple(shas), culprit)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """Shared by the tests that only read it; every test checks it is left untouched."""
    return make_repo(tmp_path_factory.mktemp("bisect") / "checkout", commits=13, culprit=9)


def assert_checkout_untouched(repo: Repo) -> None:
    assert repo.git("rev-parse", "HEAD").strip() == repo.shas[-1]
    assert repo.git("status", "--porcelain") == ""
    assert repo.git("worktree", "list", "--porcelain").count("worktree ") == 1


# git reading


def test_commits_between_lists_the_suspects_oldest_first(repo: Repo) -> None:
    assert commits_between(repo.path, repo.shas[2], repo.shas[6]) == repo.shas[3:7]
    assert commits_between(repo.path, repo.shas[6], repo.shas[6]) == ()


def test_commit_info_and_resolve(repo: Repo) -> None:
    info = commit_info(repo.path, repo.shas[4][:10])
    assert (info.sha, info.title, info.author) == (repo.shas[4], "change 4", "Ada Lovelace")
    assert resolve_commit(repo.path, "HEAD~1") == repo.shas[-2]
    with pytest.raises(GitError, match="unknown commit 'nope'"):
        resolve_commit(repo.path, "nope")


def test_output_tail_keeps_the_last_lines_within_the_size_cap() -> None:
    text = "\n".join(f"line {i}" for i in range(100)) + "\n"
    assert output_tail(text, max_lines=3) == "line 97\nline 98\nline 99"
    capped = output_tail("x" * 5000, max_chars=100)
    assert len(capped) == 100
    assert capped.startswith("…")


# probing


def test_probe_outcomes_follow_the_exit_status(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "checkout", commits=3, culprit=1, untestable=frozenset({2}))
    backend = LocalBackend(repo.path, CHECK, timeout=30)
    good, bad, skipped = (backend.probe(sha) for sha in repo.shas)
    assert (good.outcome, good.detail) == (Outcome.PASS, "exit 0")
    assert (bad.outcome, bad.detail) == (Outcome.FAIL, "exit 1")
    assert bad.tail == "state is broken"
    assert (skipped.outcome, skipped.detail) == (Outcome.INCONCLUSIVE, "untestable (exit 125)")
    assert_checkout_untouched(repo)


def test_probe_runs_in_a_worktree_and_leaves_the_checkout_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "checkout", commits=3, culprit=2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    (repo.path / "state").write_text("local edit\n")  # an uncommitted change in the checkout
    command = "git rev-parse HEAD; cat state; echo scribble > state; touch new-file; exit 3"
    result = LocalBackend(repo.path, command, timeout=30).probe(repo.shas[1])
    assert result.outcome is Outcome.FAIL
    assert result.tail.splitlines() == [repo.shas[1], "fine"]
    assert (repo.path / "state").read_text() == "local edit\n"
    assert not (repo.path / "new-file").exists()
    assert repo.git("rev-parse", "HEAD").strip() == repo.shas[-1]
    assert repo.git("worktree", "list", "--porcelain").count("worktree ") == 1
    assert list(scratch.iterdir()) == [], "the worktree directory was left behind"


def test_timeout_is_a_failure_and_kills_the_whole_process_group(repo: Repo, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    command = f"echo started; sleep 60 & echo $! > {pid_file}; wait"
    result = LocalBackend(repo.path, command, timeout=0.5).probe(repo.shas[0])
    assert (result.outcome, result.detail) == (Outcome.FAIL, "timed out after 0.5s")
    assert result.tail == "started"
    assert result.seconds < 10
    assert exits_within(int(pid_file.read_text()), seconds=5), "the background sleep survived"
    assert_checkout_untouched(repo)


def exits_within(pid: int, seconds: float) -> bool:
    """True once process ``pid`` has ended: a pidfd turns readable when it exits."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], seconds)
        return bool(readable)
    finally:
        os.close(fd)


def test_a_missing_program_is_inconclusive(repo: Repo) -> None:
    result = LocalBackend(repo.path, ["./no-such-script"], timeout=5).probe(repo.shas[0])
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.detail.startswith("cannot run './no-such-script'")


def test_an_unknown_commit_is_inconclusive_and_cleaned_up(repo: Repo) -> None:
    result = LocalBackend(repo.path, CHECK, timeout=5).probe("0" * 40)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.detail.startswith("checkout failed")
    assert_checkout_untouched(repo)


def test_batch_runs_probes_concurrently(repo: Repo, tmp_path: Path) -> None:
    # a rendezvous through a FIFO: the first probe blocks reading until the second writes,
    # so both pass only if they run at the same time (otherwise the first times out)
    meet = tmp_path / "meet"
    os.mkfifo(meet)
    command = (
        f'if mkdir "{tmp_path}/first" 2>/dev/null; then cat "{meet}"; else echo hi > "{meet}"; fi'
    )
    backend = LocalBackend(repo.path, command, timeout=10, max_parallel=2)
    results = backend.probe_batch(repo.shas[1:3])
    assert [r.sha for r in results] == list(repo.shas[1:3])
    assert [r.outcome for r in results] == [Outcome.PASS, Outcome.PASS]
    assert_checkout_untouched(repo)


# the whole bisect through the driver


@pytest.mark.parametrize("k", [1, 3])
def test_local_bisect_finds_the_planted_commit(repo: Repo, k: int) -> None:
    backend = LocalBackend(repo.path, CHECK, timeout=30, max_parallel=k)
    state = BisectState(repo.shas[0], commits_between(repo.path, repo.shas[0], repo.shas[-1]), k=k)
    run = run_bisect(state, backend.probe_batch)
    assert (run.plan.status, run.plan.culprit) == ("found", repo.shas[repo.culprit])
    assert run.plan.parent == repo.shas[repo.culprit - 1]
    failures = [p for r in run.rounds for p in r.probes if p.outcome is Outcome.FAIL]
    assert failures and all(p.tail == "state is broken" for p in failures)
    assert_checkout_untouched(repo)


# the command line


def bisect_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command_name", required=True))
    args = parser.parse_args(["bisect", *argv])
    return args.func(args)


def test_cli_prints_probes_and_the_culprit(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code = bisect_cli(
        "--repo", str(repo.path), "--good", repo.shas[0][:8], "--bad", "HEAD", "--k", "2",
        "--", *CHECK,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    culprit = repo.shas[repo.culprit]
    assert out.splitlines()[-2] == f"culprit: {culprit}  change {repo.culprit}  (Ada Lovelace)"
    assert out.startswith("bisecting 12 commits")
    assert "round 1:" in out
    assert f"  {culprit[:12]}  fail" in out
    assert "      | state is broken" in out
    assert_checkout_untouched(repo)


def test_cli_without_a_culprit_says_why_and_exits_1(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    code = bisect_cli(
        "--repo", str(repo.path), "--good", repo.shas[0], "--bad", repo.shas[-1],
        "--max-runs", "2", "--", *CHECK,
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "no culprit: budget spent: 2 of 2 runs" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--good", "nope", "--bad", "HEAD"], "unknown commit 'nope'"),
        (["--good", "HEAD", "--bad", "HEAD~3"], "is not an ancestor of --bad"),
        (["--good", "HEAD~3", "--bad", "HEAD", "--k", "17"], "--k must be between 1 and 16"),
        (["--good", "HEAD~3", "--bad", "HEAD", "--timeout", "0"], "--timeout must be positive"),
    ],
)
def test_cli_rejects_bad_arguments_with_exit_2(
    repo: Repo, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert bisect_cli("--repo", str(repo.path), *argv, "--", *CHECK) == 2
    assert message in capsys.readouterr().err


def test_cli_needs_a_command_and_a_repository(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bisect_cli("--repo", str(repo.path), "--good", "HEAD~1", "--bad", "HEAD") == 2
    assert "no command given" in capsys.readouterr().err
    assert bisect_cli("--repo", str(tmp_path), "--good", "a", "--bad", "b", "--", "true") == 2
    assert "is not a git checkout" in capsys.readouterr().err


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=ROOT, timeout=60, check=False
    )


def test_cli_as_a_process_exit_status_and_streams(repo: Repo) -> None:
    script = (
        "import argparse, sys\n"
        "from bot.bisect import cli\n"
        "parser = argparse.ArgumentParser()\n"
        "cli.register(parser.add_subparsers(required=True))\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )
    common = ["bisect", "--repo", str(repo.path), "--good", repo.shas[0]]
    found = run_python("-c", script, *common, "--bad", repo.shas[-1], "--", *CHECK)
    assert found.returncode == 0, found.stderr
    assert f"culprit: {repo.shas[repo.culprit]}" in found.stdout
    empty = run_python("-c", script, *common, "--bad", repo.shas[0], "--", *CHECK)
    assert (empty.returncode, empty.stderr.strip()) == (1, "no culprit: range empty")


OTHER_COMMANDS = ("bot.commands.serve", "bot.commands.migrate", "bot.ingest.replay")


@pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in OTHER_COMMANDS),
    reason="python -m bot imports command modules that are not written yet",
)
def test_python_dash_m_bot_bisect(repo: Repo) -> None:
    done = run_python(
        "-m", "bot", "bisect", "--repo", str(repo.path), "--good", repo.shas[0],
        "--bad", repo.shas[-1], "--k", "3", "--", *CHECK,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (
        f"culprit: {repo.shas[repo.culprit]}  change {repo.culprit}  (Ada Lovelace)" in done.stdout
    )
