"""Fixed worker threads per kind of work, so one kind waiting on the database never starves another.

Webhook storage, Slack interactivity and ``/healthz`` each get their own small pool of
long-lived threads (so their SQLite connections are few and live as long as the
process). A webhook stuck behind another process's write lock can only fill the
webhook lane; Slack's 3-second acknowledgements run in theirs, and the health check
in its own. A job that waits past its deadline is abandoned by the caller (answered
503) and, if it has not started yet, never runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class LaneTimeout(Exception):
    """The job did not finish before its deadline; ``started`` says whether it ran at all.

    A started job keeps running to its end (a thread cannot be interrupted); its effect,
    if any, is whole, since every write is one transaction.
    """

    def __init__(self, lane: str, deadline: float, started: bool) -> None:
        super().__init__(f"{lane}: no result within {deadline:g}s")
        self.started = started


class Lane:
    """``workers`` threads that never exit while the lane is open."""

    def __init__(self, name: str, workers: int) -> None:
        self.name = name
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"lane-{name}")

    async def run(self, fn: Callable[..., T], *args: object, deadline: float | None = None) -> T:
        """Run ``fn(*args)`` in this lane; LaneTimeout after ``deadline`` seconds."""
        future: Future[T] = self._pool.submit(fn, *args)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                          timeout=deadline)
        except TimeoutError:
            started = not future.cancel()
            raise LaneTimeout(self.name, deadline or 0.0, started) from None

    def call(self, fn: Callable[..., T], *args: object, timeout: float | None = None) -> T:
        """The same from a plain thread (tests, the CLI): wait for the result."""
        future = self._pool.submit(fn, *args)
        try:
            return future.result(timeout)
        except TimeoutError:
            started = not future.cancel()
            raise LaneTimeout(self.name, timeout or 0.0, started) from None
        except CancelledError:
            raise LaneTimeout(self.name, timeout or 0.0, False) from None

    def close(self, wait: bool = True) -> None:
        """Refuse new jobs, drop queued ones, and (by default) wait for running ones."""
        self._pool.shutdown(wait=wait, cancel_futures=True)


@dataclass
class Lanes:
    """The running bot's lanes; ``serve`` and the tests share them through ``Bot.lanes``."""

    webhooks: Lane
    slack: Lane
    health: Lane

    @classmethod
    def open(cls, webhook_workers: int = 4, slack_workers: int = 8) -> Lanes:
        return cls(webhooks=Lane("webhooks", webhook_workers), slack=Lane("slack", slack_workers),
                   health=Lane("health", 1))

    def close(self, wait: bool = True) -> None:
        for lane in (self.webhooks, self.slack, self.health):
            lane.close(wait)
