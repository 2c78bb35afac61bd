"""The real bot behind a real uvicorn server on 127.0.0.1, for tests that speak HTTP to it.

``running_bot`` migrates a temporary database, starts the bot (console mode unless
told otherwise) and serves the ASGI app on an ephemeral port in a background thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bot.config import Settings
from bot.domain.route import Route
from bot.runtime import Bot
from bot.store.db import Store
from bot.web.app import create_app

GITHUB_SECRET = "github-webhook-secret"
GRAFANA_TOKEN = "grafana-token"
GRAFANA_SECRET = "grafana-hmac-secret"
START_TIMEOUT_S = 10.0


@dataclass
class Clock:
    """A settable clock; starts at the real time so rate-limit resets from fakes line up."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RunningBot:
    bot: Bot
    server: uvicorn.Server
    base_url: str
    clock: Clock

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10, **kwargs)


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a test bot: temp DB, known secrets, no scheduler, console Slack."""
    base = Settings(
        database_path=str(tmp_path / "bot.db"),
        host="127.0.0.1",
        port=0,
        github_webhook_secret=GITHUB_SECRET,
        grafana_webhook_token=GRAFANA_TOKEN,
        scheduler_enabled=False,
        slack_bot_token=None,
        routes=(Route(),),  # what load_settings gives without BOT_CONFIG
    )
    return replace(base, **overrides)


def started_bot(settings: Settings, clock: Clock | None = None,
                sender_options: dict[str, Any] | None = None) -> Bot:
    Path(settings.database_path).parent.mkdir(parents=True, exist_ok=True)
    store = Store(settings.database_path)
    store.migrate()
    store.close()
    # console mode keeps its transcript (bot.slack_api.transcript) but prints nothing here:
    # a sender thread printing between tests would write past pytest's capture
    bot = Bot(settings, clock=clock or Clock(), sender_options=sender_options,
              console_write=lambda text: None)
    bot.start()
    return bot


@contextmanager
def serve(bot: Bot, clock: Clock) -> Iterator[RunningBot]:
    """Serve ``bot`` over HTTP until the block ends; the bot itself is stopped by the caller."""
    config = uvicorn.Config(create_app(bot), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)  # polling a condition with a deadline, not waiting for a time
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningBot(bot, server, f"http://127.0.0.1:{port}", clock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_bot(tmp_path: Path, clock: Clock | None = None,
                sender_options: dict[str, Any] | None = None,
                **overrides: Any) -> Iterator[RunningBot]:
    """A migrated, started bot served on 127.0.0.1; everything stops when the block ends.

    ``sender_options`` go to the Slack sender (tests pass ``pace_s=0`` to skip pacing).
    """
    clock = clock or Clock()
    bot = started_bot(settings_for(tmp_path, **overrides), clock, sender_options)
    try:
        with serve(bot, clock) as running:
            yield running
    finally:
        bot.stop()
