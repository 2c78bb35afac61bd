"""The Bolt app: Slack's requests in (HTTP at /slack/events, or Socket Mode), listeners wired.

Request verification stays on: Bolt checks ``X-Slack-Signature`` and refuses
timestamps older than five minutes before any listener runs. Authorization never
calls Slack (``bot.slack.identity``), and Socket Mode connects in the background,
retrying with backoff, so a slow or unreachable Slack never stops the web server.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient

from bot.health import Health
from bot.slack.listeners import register_listeners

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)


# who the bot is in console mode, where no auth.test can say it
CONSOLE_BOT_USER = "UCONSOLEBOT"
CONSOLE_BOT_ID = "BCONSOLEBOT"


class _EnvTokenNotice(logging.Filter):
    """Drops Bolt's "`token` will be unused" warning, which every start logged.

    Bolt reads ``SLACK_BOT_TOKEN`` from the environment by itself even when given a
    client; the bot passes the token through ``authorize`` on purpose, so the warning
    says nothing an operator can act on.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_BOLT_LOG = logging.getLogger("slack_bolt.App")
if not any(isinstance(f, _EnvTokenNotice) for f in _BOLT_LOG.filters):
    _BOLT_LOG.addFilter(_EnvTokenNotice())


def build_bolt_app(bot: Bot) -> App | None:
    """The Bolt app; in console mode (no ``SLACK_BOT_TOKEN``) one that never calls Slack.

    Console mode needs ``SLACK_SIGNING_SECRET`` (any value) to check requests; without
    it there is no app and ``/slack/events`` says so.
    """
    settings = bot.settings
    if not settings.slack_bot_token:
        return _console_app(bot) if settings.slack_signing_secret else None
    # no token on the client itself: Bolt would then authorize with auth.test on the
    # first request; ``authorize`` gives each request the token without calling Slack
    client = WebClient(base_url=settings.slack_api_url,
                       timeout=int(max(1, settings.slack_timeout)))
    assert bot.identity is not None
    app = App(
        client=client,
        logger=_BOLT_LOG,
        signing_secret=settings.slack_signing_secret or "",
        authorize=bot.identity.bolt_authorize(),
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


SOCKET_PROBLEM = "slack_socket"


class SocketLink:
    """Socket Mode (``SLACK_APP_TOKEN``), connected from a background thread with backoff.

    Until the first connection succeeds ``/healthz`` names the problem; once connected,
    the SDK reconnects by itself and this thread keeps ``/healthz`` in step with it.
    """

    def __init__(self, app: App, app_token: str, health: Health, *, retry_s: float = 1.0,
                 max_retry_s: float = 60.0, check_s: float = 5.0) -> None:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        self.handler = SocketModeHandler(app, app_token)
        self.health = health
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.check_s = check_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.health.problem(SOCKET_PROBLEM, "Socket Mode: connecting to Slack")
        self._thread = threading.Thread(target=self._run, name="slack-socket", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.handler.close()
        except Exception:  # closing a link that never opened must not fail a shutdown
            log.debug("closing Socket Mode failed", exc_info=True)

    @property
    def connected(self) -> bool:
        return bool(self.handler.client.is_connected())

    def _run(self) -> None:
        wait = self.retry_s
        while not self._stop.is_set():
            try:
                self.handler.client.wss_uri = None  # a URL is good for one connection only
                self.handler.connect()
            except Exception as exc:  # any failure to connect is retried, whatever its type
                why = f"Socket Mode cannot reach Slack ({type(exc).__name__}: {exc}); " \
                      f"retrying in {wait:g}s"
                log.warning("%s", why)
                self.health.problem(SOCKET_PROBLEM, why)
                self._stop.wait(wait)
                wait = min(self.max_retry_s, wait * 2)
                continue
            log.info("connected to Slack over Socket Mode")
            break
        while not self._stop.is_set():
            self.health.problem(SOCKET_PROBLEM, None if self.connected else
                                "Socket Mode: disconnected from Slack, reconnecting")
            self._stop.wait(self.check_s)
