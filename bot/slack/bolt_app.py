"""The Bolt app: Slack's requests in (HTTP at /slack/events, or Socket Mode), listeners wired.

Request verification stays on: Bolt checks ``X-Slack-Signature`` and refuses
timestamps older than five minutes before any listener runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot.slack.listeners import register_listeners

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)


# who the bot is in console mode, where no auth.test can say it
CONSOLE_BOT_USER = "UCONSOLEBOT"
CONSOLE_BOT_ID = "BCONSOLEBOT"


def build_bolt_app(bot: Bot) -> App | None:
    """The Bolt app; in console mode (no ``SLACK_BOT_TOKEN``) one that never calls Slack.

    Console mode needs ``SLACK_SIGNING_SECRET`` (any value) to check requests; without
    it there is no app and ``/slack/events`` says so.
    """
    settings = bot.settings
    if not settings.slack_bot_token:
        return _console_app(bot) if settings.slack_signing_secret else None
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


def _console_app(bot: Bot) -> App:
    """Bolt with the same listeners and request checks, and nothing that reaches Slack.

    A fixed identity replaces ``auth.test``; listeners finish before the answer goes back
    (``process_before_response``: there is no 3 s deadline to meet), so the answer a slash
    command gives through ``respond`` can be returned in the HTTP response itself. The web
    layer hands each request a ``ConsoleAnswers`` as its ``respond``.
    """
    settings = bot.settings

    def console_identity(enterprise_id: str | None, team_id: str | None,
                         user_id: str | None) -> AuthorizeResult:
        return AuthorizeResult(enterprise_id=enterprise_id, team_id=team_id, user_id=user_id,
                               bot_user_id=CONSOLE_BOT_USER, bot_id=CONSOLE_BOT_ID)

    app = App(
        client=WebClient(token=None, base_url=settings.slack_api_url),  # never called
        signing_secret=settings.slack_signing_secret or "",
        authorize=console_identity,
        request_verification_enabled=True,
        process_before_response=True,
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
