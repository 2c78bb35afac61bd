"""Bolt listeners, grouped by the Slack surface they answer (commands, actions, events, views)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from slack_bolt import App

if TYPE_CHECKING:
    from bot.runtime import Bot

SURFACES = ("commands", "actions", "events", "views")


def register_listeners(app: App, bot: Bot) -> None:
    for surface in SURFACES:
        try:
            module = importlib.import_module(f"bot.slack.listeners.{surface}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bot.slack.listeners.{surface}":
                raise
            continue
        module.register(app, bot)
