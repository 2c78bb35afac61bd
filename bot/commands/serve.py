"""``python -m bot serve``: run the web server (and, unless disabled, the scheduler).

SIGTERM (and Ctrl-C) stop it gracefully: the listening socket closes, requests in
flight get up to ``SHUTDOWN_TIMEOUT`` to finish, then the bot's own work (scheduled
jobs, the Slack sender, bisect probes) gets what is left of it, leases are released and
the process exits 0. A second signal stops at once.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from bot.config import ConfigError, Settings, load_settings
from bot.runtime import Bot
from bot.store.db import DatabaseUnusable
from bot.web.app import create_app
from bot.web.edge import default_max_connections, guarded_protocol

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the bot's web server")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings()
        bot = Bot(settings)
    except ConfigError as exc:
        print(f"serve: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        bot.start()
    except ConfigError as exc:
        print(f"serve: configuration error: {exc}", file=sys.stderr)
        bot.stop()
        return 2
    except DatabaseUnusable as exc:
        print(f"serve: {exc.explain('DATABASE_PATH')}", file=sys.stderr)
        bot.stop()
        return 2
    except RuntimeError as exc:
        print(f"serve: {exc}", file=sys.stderr)
        bot.stop()
        return 2
    server = GracefulServer(server_config(bot, settings))
    try:
        server.run()
    finally:
        log.info("stopping: finishing work in flight (up to %gs)", settings.shutdown_timeout)
        bot.stop(timeout=settings.shutdown_timeout / 2)
    log.info("stopped")
    return 0


def server_config(bot: Bot, settings: Settings) -> uvicorn.Config:
    """uvicorn with the edge limits (README, "Limits at the edge")."""
    return uvicorn.Config(
        create_app(bot), host=settings.host, port=settings.port,
        # uvicorn sets its own loggers' level; LOG_LEVEL (already on the root logger) rules
        log_level=logging.getLogger().getEffectiveLevel(),
        access_log=False, lifespan="off",
        http=guarded_protocol(settings.header_timeout,
                              settings.max_connections or default_max_connections()),
        timeout_keep_alive=5,
        # half for requests in flight, half for the bot's own work after them
        timeout_graceful_shutdown=max(int(settings.shutdown_timeout / 2), 1),
        # an h11 request head (line and headers) larger than this is refused
        h11_max_incomplete_event_size=64 * 1024,
    )


class GracefulServer(uvicorn.Server):
    """uvicorn's server, minus re-raising the signal after its shutdown.

    uvicorn re-sends SIGTERM to itself once it has stopped serving, which kills the
    process (status -15) before the bot can finish its work and release its leases.
    """

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)
