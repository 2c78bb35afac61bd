"""The ``local`` bisect backend: runs a command at each probed commit of a git checkout.

Each probe gets its own ``git worktree`` in a temporary directory, so the configured
checkout (its files, index and HEAD) is never touched and probes can run side by side.
Every child process (git, and the probe command, which runs code from an untrusted
commit) gets a minimal explicit environment, never the bot's own: the bot's tokens are
in its environment. Output is redacted of the configured secrets all the same.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bot.bisect.driver import ProbeResult
from bot.domain.bisect_planner import Outcome
from bot.domain.model import Commit
from bot.domain.payload import is_sha
from bot.domain.redact import redact

UNTESTABLE_EXIT = 125
"""Exit status meaning "cannot test this commit", as in ``git bisect run``."""

TAIL_LINES = 20
TAIL_CHARS = 2000
_TAIL_READ = 64 * 1024  # bytes read from the end of the output to build the tail


PASSED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
"""The only variables a child process inherits; anything else it needs is set explicitly."""


def child_env(**extra: str) -> dict[str, str]:
    """A minimal environment for a child process: ``PASSED_ENV`` from ours, plus ``extra``."""
    env = {name: os.environ[name] for name in PASSED_ENV if name in os.environ}
    env.setdefault("PATH", os.defpath)
    env["GIT_TERMINAL_PROMPT"] = "0"  # never wait for credentials on a terminal
    env.update(extra)
    return env


class GitError(RuntimeError):
    """A git command failed; the message is git's own stderr."""


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env=child_env(),
    )
    if done.returncode != 0:
        raise GitError(done.stderr.strip() or f"git {' '.join(args)} exited {done.returncode}")
    return done.stdout


def check_repository(repo: Path) -> None:
    """GitError unless ``repo`` is a git checkout, so later errors are about commits."""
    if not repo.is_dir():
        raise GitError(f"{repo} is not a directory")
    try:
        _git(repo, "rev-parse", "--git-dir")
    except GitError as exc:
        raise GitError(f"{repo} is not a git checkout: {exc}") from None


def resolve_commit(repo: Path, rev: str) -> str:
    """The full sha of ``rev``; GitError when the checkout does not know it."""
    try:
        return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except GitError:
        raise GitError(f"unknown commit {rev!r} in {repo}") from None


def is_ancestor(repo: Path, older: str, newer: str) -> bool:
    """True when ``older`` is an ancestor of (or equal to) ``newer``."""
    done = subprocess.run(
        ["git", "-C", str(repo), "merge-base", "--is-ancestor", older, newer],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        env=child_env(),
    )
    if done.returncode not in (0, 1):
        raise GitError(done.stderr.strip())
    return done.returncode == 0


def commits_between(repo: Path, good: str, bad: str) -> tuple[str, ...]:
    """The suspects ``(good, bad]`` along first parents, oldest first.

    First parents follow trunk order (how the branch advanced), so a merged branch counts
    as its merge commit, like the streak's commit order.
    """
    out = _git(repo, "rev-list", "--reverse", "--first-parent", f"{good}..{bad}")
    return tuple(line for line in out.splitlines() if line)


def commit_info(repo: Path, sha: str) -> Commit:
    """Full sha, title and author name of one commit."""
    out = _git(repo, "log", "-1", "--format=%H%x00%s%x00%an", sha, "--")
    full, title, author = out.rstrip("\n").split("\x00", 2)
    return Commit(sha=full, title=title, author=author)


def output_tail(text: str, max_lines: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> str:
    """The end of a probe's output, short enough for a Slack thread reply.

    Failures usually explain themselves in the last lines; the character cap keeps one
    enormous line (a minified log, a progress bar) from filling the message.
    """
    lines = text.rstrip().splitlines()[-max_lines:]
    tail = "\n".join(lines)
    if len(tail) > max_chars:
        tail = "…" + tail[-(max_chars - 1) :]
    return tail


@dataclass(frozen=True)
class LocalBackend:
    """Runs ``command`` at commits of ``repo``, ``max_parallel`` at once, each within ``timeout``.

    ``command`` is an argument list run without a shell, or a string run by ``/bin/sh``.
    Exit 0 is a pass, 125 untestable (inconclusive), anything else or a timeout a fail.
    The command sees only ``child_env()`` plus ``BISECT_SHA``; ``secrets`` are cut out of
    everything a probe reports.
    """

    repo: Path
    command: Sequence[str] | str
    timeout: float
    max_parallel: int = 1
    secrets: tuple[str, ...] = ()
    _git_lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, got {self.timeout}")
        if self.max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {self.max_parallel}")
        if not self.command:
            raise ValueError("command is empty")

    def probe_batch(self, shas: Sequence[str]) -> list[ProbeResult]:
        """Probe every sha, up to ``max_parallel`` at once; results in the order asked."""
        if len(shas) <= 1 or self.max_parallel == 1:
            return [self.probe(sha) for sha in shas]
        with ThreadPoolExecutor(max_workers=min(self.max_parallel, len(shas))) as pool:
            return list(pool.map(self.probe, shas))

    def probe(self, sha: str) -> ProbeResult:
        """Check out ``sha`` in a fresh worktree, run the command there, then remove it."""
        started = time.monotonic()
        if not is_sha(sha):  # a ref (``HEAD~3``, a branch) is not what was planned
            return ProbeResult(sha, Outcome.INCONCLUSIVE,
                               detail=f"not a 40-hex-digit commit sha: {sha[:50]!r}", seconds=0.0)
        workdir = Path(tempfile.mkdtemp(prefix=f"bisect-{sha[:12]}-"))
        try:
            try:
                # worktree bookkeeping lives in the shared .git directory: one change at a time
                with self._git_lock:
                    _git(self.repo, "worktree", "add", "--detach", str(workdir), sha)
            except GitError as exc:
                return ProbeResult(
                    sha,
                    Outcome.INCONCLUSIVE,
                    detail=redact(f"checkout failed: {exc}", self.secrets),
                    seconds=time.monotonic() - started,
                )
            outcome, detail, output = self._run(workdir, sha)
            return ProbeResult(
                sha,
                outcome,
                detail=redact(detail, self.secrets),
                tail=output_tail(redact(output, self.secrets)),
                seconds=time.monotonic() - started,
            )
        finally:
            self._remove_worktree(workdir)

    def _run(self, workdir: Path, sha: str) -> tuple[Outcome, str, str]:
        argv = ["/bin/sh", "-c", self.command] if isinstance(self.command, str) else self.command
        with tempfile.TemporaryFile() as log:
            try:
                # own session, so a timeout can kill the whole process group, grandchildren too
                proc = subprocess.Popen(
                    list(argv),
                    cwd=workdir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=child_env(BISECT_SHA=sha),
                )
            except OSError as exc:
                return Outcome.INCONCLUSIVE, f"cannot run {argv[0]!r}: {exc.strerror}", ""
            try:
                code = proc.wait(timeout=self.timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                return Outcome.FAIL, f"timed out after {self.timeout:g}s", _read_tail(log)
            output = _read_tail(log)
        if code == 0:
            return Outcome.PASS, "exit 0", output
        if code == UNTESTABLE_EXIT:
            return Outcome.INCONCLUSIVE, f"untestable (exit {UNTESTABLE_EXIT})", output
        if code < 0:
            return Outcome.FAIL, f"killed by signal {-code}", output
        return Outcome.FAIL, f"exit {code}", output

    def _remove_worktree(self, workdir: Path) -> None:
        with self._git_lock:
            try:
                _git(self.repo, "worktree", "remove", "--force", str(workdir))
            except GitError:
                # the add failed or the tree is damaged: drop the files, then git's record
                shutil.rmtree(workdir, ignore_errors=True)
                with contextlib.suppress(GitError):
                    _git(self.repo, "worktree", "prune")
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _read_tail(log: IO[bytes]) -> str:
    """The last bytes of the output file: enough for the tail, however long the run was."""
    size = log.seek(0, os.SEEK_END)
    log.seek(max(0, size - _TAIL_READ))
    return log.read().decode("utf-8", errors="replace")
