"""The Bolt app: Slack's requests in (HTTP at /slack/events, or Socket Mode), listeners wired.

Request verification stays on: Bolt checks ``X-Slack-Signature`` and refuses
timestamps older than five minutes before any listener runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_sdk import WebClient

from bot.slack.listeners import register_listeners

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)


def build_bolt_app(bot: Bot) -> App | None:
    """The Bolt app, or None in console mode (no ``SLACK_BOT_TOKEN``)."""
    settings = bot.settings
    if not settings.slack_bot_token:
        return None
    client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                       timeout=int(max(1, settings.slack_timeout)))
    app = App(
        client=client,
        signing_secret=settings.slack_signing_secret or "",
        # no auth.test at start-up: the bot must boot while Slack is unreachable
        token_verification_enabled=False,
        request_verification_enabled=True,
        # answer Slack within 3 s: ack first, slow work in lazy listeners / threads
        process_before_response=False,
        raise_error_for_unhandled_request=False,
    )
    register_listeners(app, bot)
    return app


def start_socket_mode(app: App, app_token: str) -> object:
    """Connect over Socket Mode (``SLACK_APP_TOKEN``) without blocking the web server."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, app_token)
    handler.connect()
    log.info("connected to Slack over Socket Mode")
    return handler
