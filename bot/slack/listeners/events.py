"""Events API subscriptions: ``app_home_opened`` publishes the person's Home tab;
``app_uninstalled`` / ``tokens_revoked`` mark the bot unable to post (``/healthz``).

Slack retries an event it thinks went unanswered (``X-Slack-Retry-Num``) with the same
``event_id``; the id is recorded in SQLite so each event is handled once. Slack also
retries anything answered with other than a 2xx, so every other event type is
acknowledged and ignored rather than left to Bolt's 404.
"""

from __future__ import annotations

import logging
import re
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

    @app.event("app_uninstalled")
    def on_uninstalled(event: dict[str, Any]) -> None:
        if bot.identity is not None:
            bot.identity.revoked("Slack: the app was uninstalled from the workspace; reinstall "
                                 "it and set the new SLACK_BOT_TOKEN")

    @app.event("tokens_revoked")
    def on_tokens_revoked(event: dict[str, Any]) -> None:
        tokens = event.get("tokens") if isinstance(event.get("tokens"), dict) else {}
        if bot.identity is not None and (tokens or {}).get("bot"):
            bot.identity.revoked("Slack: the bot token was revoked; reinstall the app and set "
                                 "the new SLACK_BOT_TOKEN")
        else:
            log.info("Slack revoked user tokens only; the bot token still works")

    @app.event(re.compile(r".*"))
    def on_other_event(event: dict[str, Any]) -> None:
        """Any other subscribed event: answered 200 so Slack does not retry it."""
        log.debug("ignoring Slack event %s", event.get("type"))
