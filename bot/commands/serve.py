"""``python -m bot serve``: run the web server (and, unless disabled, the scheduler)."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from bot.config import ConfigError, load_settings
from bot.runtime import Bot
from bot.store.db import DatabaseUnusable
from bot.web.app import create_app

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
    try:
        uvicorn.run(create_app(bot), host=settings.host, port=settings.port,
                    log_level="info", access_log=False)
    finally:
        bot.stop()
    return 0
