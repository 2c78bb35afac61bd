"""``python -m bot migrate``: bring the database schema up to date (idempotent)."""

from __future__ import annotations

import argparse
import sys

from bot.config import ConfigError, load_settings
from bot.store.db import DatabaseUnusable, Store


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("migrate", help="apply pending database migrations")
    parser.add_argument("--db", help="SQLite file (default: $DATABASE_PATH)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        path = args.db or load_settings().database_path
    except ConfigError as exc:
        print(f"migrate: configuration error: {exc}", file=sys.stderr)
        return 2
    store = Store(path)
    try:
        applied = store.migrate()
    except DatabaseUnusable as exc:
        print(f"migrate: {exc.explain('--db' if args.db else 'DATABASE_PATH')}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(f"{path}: applied {', '.join(applied)}" if applied else f"{path}: up to date")
    return 0
