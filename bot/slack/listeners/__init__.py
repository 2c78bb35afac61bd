"""Bolt listeners, grouped by the Slack surface they answer: commands, actions, events.

Each surface's module has one ``register(app, bot)`` that wires its callbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt import App

from bot.slack.listeners import actions, commands, events

if TYPE_CHECKING:
    from bot.runtime import Bot


def register_listeners(app: App, bot: Bot) -> None:
    commands.register(app, bot)
    actions.register(app, bot)
    events.register(app, bot)
