"""Calling Slack: one function per Web API call, every failure turned into a named error.

The sender decides what to do by the error's type (wait, back off, ask a human,
fall back to plain text), never by string-matching at the call site.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

# errors a retry cannot fix until someone changes Slack or the configuration
PERMANENT = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
    "account_inactive", "token_revoked", "token_expired", "missing_scope", "no_permission",
    "restricted_action", "team_access_not_granted", "ekm_access_denied", "org_login_required",
})
# errors that mean our message itself was refused
REJECTED = frozenset({"invalid_blocks", "invalid_blocks_format", "msg_too_long", "no_text",
                      "invalid_metadata_format", "invalid_metadata_schema", "too_many_attachments"})
GONE = frozenset({"message_not_found", "cant_update_message", "thread_not_found"})


RETRY_AFTER_MIN_S = 1.0
RETRY_AFTER_MAX_S = 300.0
"""Slack's Retry-After is seconds, usually a few; an answer of ``nan``, ``inf`` or a day is
treated as the longest wait that still lets the bot notice Slack recovering."""


def retry_after_seconds(raw: object) -> float:
    """``Retry-After`` as seconds within [1 s, 5 min]; absent or unreadable means 1 s."""
    try:
        seconds = float(str(raw).strip()) if raw is not None else RETRY_AFTER_MIN_S
    except ValueError:
        return RETRY_AFTER_MIN_S
    if seconds != seconds:  # nan
        return RETRY_AFTER_MAX_S
    return min(max(seconds, RETRY_AFTER_MIN_S), RETRY_AFTER_MAX_S)


class SlackError(Exception):
    """A Slack call that did not succeed; ``code`` is Slack's error string or HTTP status."""

    def __init__(self, method: str, code: str) -> None:
        super().__init__(f"{method}: {code}")
        self.method = method
        self.code = code


class RateLimited(SlackError):
    def __init__(self, method: str, retry_after: float) -> None:
        super().__init__(method, f"ratelimited (retry after {retry_after:g}s)")
        self.retry_after = retry_after


class Transient(SlackError):
    """5xx, timeouts, connection failures: back off and try again."""


class InDoubt(Transient):
    """The request was sent but no answer came (timeout, connection lost): Slack may still act.

    A post that ends this way may appear in the channel seconds later, so the sender
    waits before looking for it and posting again.
    """


class Permanent(SlackError):
    """Needs a human (invite the bot, fix the token or channel); retried slowly meanwhile."""


class Rejected(SlackError):
    """Slack refused the message's content; resend as plain text."""


class MessageGone(SlackError):
    """The message to edit or reply to no longer exists."""


class SlackApi(Protocol):
    """The calls the bot makes; the real client and console mode's (``console``) provide them."""

    def call(self, method: str, **params: Any) -> dict[str, Any]: ...


def _classify(method: str, exc: SlackApiError) -> SlackError:
    response = exc.response
    status = getattr(response, "status_code", 200)
    code = str(response.get("error", "")) if hasattr(response, "get") else ""
    if status == 429 or code == "ratelimited":
        headers = getattr(response, "headers", {}) or {}
        raw = headers.get("Retry-After") or headers.get("retry-after")
        return RateLimited(method, retry_after_seconds(raw))
    if status >= 500 or code in ("internal_error", "fatal_error", "service_unavailable",
                                 "request_timeout"):
        return Transient(method, code or f"HTTP {status}")
    if code in PERMANENT:
        return Permanent(method, code)
    if code in REJECTED:
        return Rejected(method, code)
    if code in GONE:
        return MessageGone(method, code)
    return Transient(method, code or f"HTTP {status}")


class WebApi:
    """The real Web API through ``slack_sdk`` (``SLACK_API_URL`` is its base URL)."""

    def __init__(self, token: str, base_url: str, timeout: float = 10.0) -> None:
        self.client = WebClient(token=token, base_url=base_url, timeout=timeout)
        # the sender owns retries (durably, in SQLite); the SDK's own would double them
        self.client.retry_handlers = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        try:
            if method in ("conversations.history", "conversations.replies", "users.info",
                          "users.lookupByEmail", "chat.getPermalink", "usergroups.users.list",
                          "usergroups.list"):
                response = self.client.api_call(method, http_verb="GET", params=params)
            else:
                response = self.client.api_call(method, json=params)
        except SlackApiError as exc:
            raise _classify(method, exc) from None
        except URLError as exc:  # failed connecting or sending: Slack never got the request
            raise Transient(method, f"{type(exc).__name__}: {exc}") from None
        except (OSError, TimeoutError) as exc:  # sent, then no answer: it may have landed
            raise InDoubt(method, f"{type(exc).__name__}: {exc}") from None
        return dict(response.data) if isinstance(response.data, dict) else {"ok": True}
