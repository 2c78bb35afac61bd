"""``python -m bot serve`` as a real child process on 127.0.0.1: start, kill -9, restart.

Crash tests and the load bench use it; everything the bot knows must survive in the
SQLite file, because a SIGKILL leaves nothing else.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A port nothing listens on right now (``serve`` has no ``PORT=0``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServeProcess:
    """One bot database served by successive ``serve`` processes, one at a time."""

    def __init__(self, env: Mapping[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        self.env = {**base, "HOST": "127.0.0.1", "PORT": str(self.port),
                    "LOG_LEVEL": "INFO", **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        # run in the child before exec: lower a resource limit, drop to another user
        self.preexec: Callable[[], None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def migrate(self) -> None:
        done = subprocess.run([sys.executable, "-m", "bot", "migrate"], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"migrate failed: {done.stdout}{done.stderr}")

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start ``serve`` and return once ``/healthz`` answers (any status)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1} ---\n".encode())
            log.flush()
            self.proc = subprocess.Popen([sys.executable, "-m", "bot", "serve"], env=self.env,
                                         cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, preexec_fn=self.preexec)
        self.starts += 1
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"serve exited with {self.proc.returncode}:\n"
                                       f"{self.log_tail()}")
                try:
                    client.get(self.url + "/healthz")
                    return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"serve did not answer within {timeout}s:\n"
                                       f"{self.log_tail()}")
                time.sleep(0.05)  # polling a condition with a deadline

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, no lease is released, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """A graceful stop (SIGTERM), falling back to SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
