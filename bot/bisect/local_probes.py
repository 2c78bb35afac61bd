"""``local`` probes for the bot: each runs in a worker thread and writes its own outcome.

No ingest is involved: the outcome goes straight into ``bisect_probes``. A probe left
``running`` by a process that died has no worker any more and is started again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from bot.bisect.config import BisectConfig
from bot.bisect.local import LocalBackend
from bot.domain.bisect_planner import Outcome
from bot.domain.redact import redact
from bot.store import bisects as store
from bot.store.bisects import Probe
from bot.store.db import Store

log = logging.getLogger(__name__)

DETAIL_CHARS = 300


class LocalWorkers:
    """The probes this process is running right now, by probe id."""

    def __init__(self, store: Store, clock: Callable[[], datetime],
                 secrets: tuple[str, ...] = ()) -> None:
        self.store = store
        self.clock = clock
        self.secrets = secrets
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}
        # one backend per checkout and command: its lock keeps concurrent probes from
        # changing the checkout's shared worktree bookkeeping at the same time
        self._backends: dict[tuple[str, str, float], LocalBackend] = {}

    def busy(self, probe_id: int) -> bool:
        with self._lock:
            return probe_id in self._threads

    def advance(self, config: BisectConfig, probe: Probe) -> None:
        """Start the probe unless a worker of this process already runs it."""
        if probe.done or probe.state not in ("planned", "running") or self.busy(probe.id):
            return
        with self.store.transaction() as db:
            if probe.state == "planned" and not store.set_run(db, probe.id, None, None):
                return  # someone else moved it
        assert config.repo is not None and config.command is not None
        backend = self.backend(config)
        thread = threading.Thread(target=self._run, args=(backend, probe),
                                  name=f"bisect-probe-{probe.id}", daemon=True)
        with self._lock:
            self._threads[probe.id] = thread
        thread.start()

    def backend(self, config: BisectConfig) -> LocalBackend:
        """The backend running this checkout's probes: one per checkout and command."""
        assert config.repo is not None and config.command is not None
        key = (str(config.repo), str(config.command), config.timeout.total_seconds())
        with self._lock:
            if key not in self._backends:
                self._backends[key] = LocalBackend(config.repo, config.command, key[2],
                                                   secrets=self.secrets)
            return self._backends[key]

    def join(self, timeout: float | None = None) -> None:
        """Wait for running workers (tests and shutdown)."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)

    def _run(self, backend: LocalBackend, probe: Probe) -> None:
        try:
            result = backend.probe(probe.sha)
            detail = result.detail
            last = result.tail.strip().splitlines()[-1:] if result.outcome is Outcome.FAIL else []
            if last:
                detail = f"{detail}: {last[0]}"
            outcome = result.outcome
        except Exception as exc:  # a broken checkout must not leave the probe running forever
            log.error("local probe %s at %s failed: %s", probe.id, probe.sha[:12],
                      redact(f"{type(exc).__name__}: {exc}", self.secrets))
            outcome, detail = Outcome.INCONCLUSIVE, f"{type(exc).__name__}: {exc}"
        detail = redact(detail, self.secrets)
        try:
            with self.store.transaction() as db:
                store.finish_probe(db, probe.id, outcome, detail[:DETAIL_CHARS],
                                   self.clock())
        finally:
            with self._lock:
                self._threads.pop(probe.id, None)
