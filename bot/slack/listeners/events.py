"""Events API subscriptions: ``app_home_opened`` publishes the person's Home tab.

Slack retries an event it thinks went unanswered (``X-Slack-Retry-Num``) with the same
``event_id``; the id is recorded in SQLite so each event is handled once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_bolt import App

from bot.slack.client import SlackError
from bot.slack.home import publish_home
from bot.store.interactions import first_time

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)


def register(app: App, bot: Bot) -> None:
    @app.event("app_home_opened")
    def on_home_opened(event: dict[str, Any], body: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        event_id = body.get("event_id")
        if event_id:
            with bot.store.transaction() as db:
                if not first_time(db, f"event:{event_id}", bot.clock()):
                    log.info("event %s already handled (Slack retry)", event_id)
                    return
        try:
            publish_home(bot.store, bot.routes, bot.slack_api, bot.clock(), str(event["user"]))
        except SlackError as exc:
            log.warning("could not publish the Home tab for %s: %s", event["user"], exc)
