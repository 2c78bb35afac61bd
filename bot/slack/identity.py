"""Who the bot is in Slack (``auth.test``), learnt in the background, never inside a request.

Bolt's default authorization calls ``auth.test`` on the first request and caches only a
success, so a slow or failing Slack made the first click miss the 3 s deadline or showed
Bolt's "reinstall" text. Here a thread asks at start-up and retries with backoff; Bolt's
``authorize`` hands every request the token and whatever identity is known so far.
A failing ``auth.test``, or an ``app_uninstalled`` / ``tokens_revoked`` event, is a
named problem in ``/healthz``; people never see it as an error of their click.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from slack_bolt.authorization import AuthorizeResult

from bot.health import Health
from bot.slack.client import Permanent, SlackApi, SlackError

log = logging.getLogger(__name__)

PROBLEM = "slack_auth"  # the /healthz problem name for identity and token trouble
SOURCE = "slack-auth"


@dataclass(frozen=True, slots=True)
class Identity:
    """The bot's own ids, as ``auth.test`` states them."""

    user_id: str | None
    bot_id: str | None
    team_id: str | None


class BotIdentity:
    """Resolves the bot's identity off the request path and reports trouble to ``Health``.

    ``retry_s`` is the first wait after a failure; it doubles up to ``max_retry_s``.
    A permanent failure (revoked or invalid token) keeps being retried at
    ``max_retry_s``, so a fixed token is noticed without a restart.
    """

    def __init__(self, api: SlackApi, token: str, health: Health, *, retry_s: float = 1.0,
                 max_retry_s: float = 300.0) -> None:
        self.api = api
        self.token = token
        self.health = health
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self._identity: Identity | None = None
        self._revoked: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- what requests read ------------------------------------------------------------

    @property
    def current(self) -> Identity | None:
        with self._lock:
            return self._identity

    def bolt_authorize(self) -> Callable[..., AuthorizeResult]:
        """Bolt's ``authorize``: the configured token and the identity known so far.

        Never calls Slack, so it can neither be slow nor fail: a request is handled
        (and acknowledged) whatever state ``auth.test`` is in. A plain function, since
        Bolt passes arguments by the names it finds in the signature.
        """
        def authorize(enterprise_id: str | None, team_id: str | None,
                      user_id: str | None) -> AuthorizeResult:
            known = self.current
            return AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id or (known.team_id if known else None),
                user_id=user_id,
                bot_token=self.token,
                bot_user_id=known.user_id if known else None,
                bot_id=known.bot_id if known else None,
            )
        return authorize

    # --- events that say the token no longer works ----------------------------------------

    def revoked(self, why: str) -> None:
        """``app_uninstalled`` / ``tokens_revoked``: the bot cannot post until reinstalled."""
        with self._lock:
            self._revoked = why
        log.error("Slack: %s", why)
        self.health.problem(PROBLEM, why)

    # --- the background check ------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slack-identity", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def check_once(self) -> bool:
        """One ``auth.test``; True when it answered and the identity is known."""
        try:
            answer = self.api.call("auth.test")
        except SlackError as exc:
            hint = (" (check SLACK_BOT_TOKEN, or reinstall the app)"
                    if isinstance(exc, Permanent) else "")
            self.health.error(SOURCE, str(exc))
            self.health.problem(PROBLEM, f"Slack auth.test failed: {exc.code}{hint}")
            log.warning("Slack auth.test failed: %s", exc)
            return False
        identity = Identity(user_id=_text(answer.get("user_id")),
                            bot_id=_text(answer.get("bot_id")),
                            team_id=_text(answer.get("team_id")))
        with self._lock:
            self._identity = identity
            self._revoked = None
        self.health.ok(SOURCE, note=f"bot user {identity.user_id or '?'}")
        self.health.problem(PROBLEM, None)
        log.info("Slack identity: bot user %s, bot %s, team %s", identity.user_id,
                 identity.bot_id, identity.team_id)
        return True

    def _run(self) -> None:
        wait = self.retry_s
        while not self._stop.is_set():
            if self.check_once():
                return
            self._stop.wait(wait)
            wait = min(self.max_retry_s, wait * 2)


def _text(value: object) -> str | None:
    return str(value) if value else None

