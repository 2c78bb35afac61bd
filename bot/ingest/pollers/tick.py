"""One poller tick: its report, the two ways it ends early, and the pause a rate limit causes.

A tick that hits a rate limit pauses the poller (persisted, so restarts respect it);
a tick that hits a 5xx, a timeout or a bad answer just ends, and the next tick
re-reads whatever was not committed. Both say why in ``/healthz``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from bot.ingest.pipeline import IngestReport
from bot.store import pollers as poller_store

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

# GitHub: "if you exceed a secondary rate limit without a retry-after header, wait at
# least one minute"; used for any rate-limit answer that says nothing more precise.
DEFAULT_PAUSE = timedelta(minutes=1)


class RateLimited(Exception):
    """The source asked us to stop until ``until``."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class Unavailable(Exception):
    """A 5xx, a timeout, a refused connection or an answer we cannot use: retry next tick."""


@dataclass
class PollReport:
    """What one ``poll_once`` did; tests assert on it, ``/healthz`` shows its summary."""

    name: str
    requests: int = 0
    not_modified: int = 0
    commits_placed: int = 0
    results_stored: int = 0
    runs_read: int = 0
    pages: int = 0
    alerts: set[int] = field(default_factory=set)
    skipped: bool = False  # paused: nothing was requested
    paused_until: datetime | None = None
    error: str | None = None

    def add(self, ingest: IngestReport) -> None:
        self.commits_placed += ingest.commits_placed
        self.results_stored += ingest.results_stored
        self.alerts |= ingest.alerts

    def summary(self) -> str:
        return (f"{self.requests} requests ({self.not_modified} not modified), "
                f"{self.commits_placed} commits placed, {self.results_stored} results stored")


def rate_limit_pause(response: httpx.Response, now: datetime) -> RateLimited | None:
    """The pause a 403/429 asks for, or None when it is not a rate limit (e.g. no permission).

    ``Retry-After`` wins; else ``X-RateLimit-Remaining: 0`` means wait for
    ``X-RateLimit-Reset``; else a 429 or a message naming a rate limit waits a minute.
    """
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    message = _message(response)
    retry_after = headers.get("retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        seconds = max(int(retry_after), 1)
        reason = f"{response.status_code} rate limited, Retry-After {seconds}s: {message}"
        return RateLimited(now + timedelta(seconds=seconds), reason)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = headers.get("x-ratelimit-reset", "")
        until = (datetime.fromtimestamp(int(reset), UTC) if reset.isdigit()
                 else now + DEFAULT_PAUSE)
        return RateLimited(max(until, now + timedelta(seconds=1)),
                           f"{response.status_code} rate limit used up until reset: {message}")
    if response.status_code == 429 or "rate limit" in message.lower():
        return RateLimited(now + DEFAULT_PAUSE, f"{response.status_code} {message}")
    return None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:200]
    return ""


def refuse(response: httpx.Response, now: datetime) -> None:
    """Raise for any answer that is neither 2xx nor 304."""
    if response.status_code < 300 or response.status_code == 304:
        return
    limited = rate_limit_pause(response, now)
    if limited is not None:
        raise limited
    raise Unavailable(f"{response.request.method} {response.request.url.path} answered "
                      f"{response.status_code}: {_message(response)}")


def run_tick(bot: Bot, name: str, body: Callable[[PollReport], None]) -> PollReport:
    """Run ``body`` unless ``name`` is paused; turn how it ended into health and a pause."""
    report = PollReport(name)
    now = bot.clock()
    state = poller_store.load(bot.store.db, name)
    if state.paused_until is not None and state.paused_until > now:
        report.skipped = True
        report.paused_until = state.paused_until
        bot.health.note(name, f"paused until {state.paused_until.isoformat()}: "
                              f"{state.last_error}")
        return report
    try:
        body(report)
    except RateLimited as limited:
        report.paused_until = limited.until
        report.error = limited.reason
        with bot.store.transaction() as db:
            poller_store.pause(db, name, limited.until, limited.reason, bot.clock())
        log.warning("%s paused until %s: %s", name, limited.until.isoformat(), limited.reason)
        bot.health.error(name, limited.reason)
        bot.health.note(name, f"paused until {limited.until.isoformat()}: {limited.reason}")
    except Unavailable as exc:
        report.error = str(exc)
        log.warning("%s tick ended early, retrying next tick: %s", name, exc)
        with bot.store.transaction() as db:
            poller_store.record_error(db, name, report.error, bot.clock())
        bot.health.error(name, report.error)
    else:
        if state.last_error is not None:
            with bot.store.transaction() as db:
                poller_store.record_error(db, name, None, bot.clock())
        bot.health.ok(name, note=report.summary())
    finally:
        if report.alerts:
            bot.alerts_changed(set(report.alerts))
    return report


def get(client: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    """``client.get`` with timeouts and connection failures turned into ``Unavailable``."""
    try:
        return client.get(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise Unavailable(f"GET {url} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise Unavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from None
