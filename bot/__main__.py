"""Command line: ``python -m bot <command>``.

Each command lives in the module that owns it and has a ``register(subparsers)``
function that sets ``func`` on its parser; ``func(args)`` returns the process exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bot.bisect import cli as bisect_cli
from bot.commands import demo, migrate, serve
from bot.config import ConfigError, log_level
from bot.ingest import replay

COMMANDS = (serve, migrate, replay, bisect_cli, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        level = log_level()
    except ConfigError as exc:
        print(f"python -m bot: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # APScheduler logs every job run at INFO: once a minute per job is noise, not news
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
