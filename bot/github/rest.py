"""GitHub's REST API over httpx: the client, and every answer mapped to a result or a named error.

``client()`` builds the one ``httpx.Client`` shape every caller uses (token, API version,
base URL, timeout). ``get``/``post`` turn timeouts and dropped connections into
``ApiUnavailable``; ``refuse`` turns an answer that is not a success into
``ApiRateLimited`` (wait until a time GitHub named) or ``ApiUnavailable`` (try again
later). HUD's API answers by the same HTTP conventions, so its poller uses these too.

New endpoints are small functions over a client: ``logs_url`` names the job log endpoint
(it answers a redirect, so call ``get(..., follow_redirects=True)``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

GITHUB_API = "https://api.github.com"
API_VERSION = "2022-11-28"
USER_AGENT = "inductor-bot"
# GitHub: "if you exceed a secondary rate limit without a retry-after header, wait at
# least one minute"; used for any rate-limit answer that says nothing more precise.
DEFAULT_PAUSE = timedelta(minutes=1)
# GitHub's limits reset within the hour: a longer pause is a broken header, not a limit
MAX_PAUSE = timedelta(hours=1)


class ApiRateLimited(Exception):
    """The API asked us to stop until ``until``."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
        self.reason = reason


class ApiUnavailable(Exception):
    """A 5xx, a timeout, a refused connection or an answer we cannot use: retry later."""


def client(api_url: str, token: str | None, *, timeout: float = 10.0) -> httpx.Client:
    """A client for GitHub's REST API at ``api_url`` (``GITHUB_API_URL``), as ``token``."""
    return httpx.Client(
        base_url=api_url.rstrip("/"),
        timeout=httpx.Timeout(timeout),
        headers={
            **({"Authorization": f"Bearer {token}"} if token else {}),
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,
        },
    )


def logs_url(repo: str, job_id: int, api: str = GITHUB_API) -> str:
    """Where a job's log lives. Webhooks carry no log URL; this endpoint answers a redirect."""
    return f"{api}/repos/{repo}/actions/jobs/{job_id}/logs"


def message(response: httpx.Response) -> str:
    """The error text of an answer (its JSON ``message``), at most 200 characters."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or "")[:200]
    return ""


def reset_time(response: httpx.Response, now: datetime) -> datetime:
    """When the rate limit resets (``X-RateLimit-Reset``), at least a second from now."""
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    latest = now + MAX_PAUSE
    until = (datetime.fromtimestamp(min(int(reset), int(latest.timestamp())), UTC)
             if reset.isascii() and reset.isdigit() else now + DEFAULT_PAUSE)
    return min(max(until, now + timedelta(seconds=1)), latest)


def rate_limit_pause(response: httpx.Response, now: datetime) -> ApiRateLimited | None:
    """The pause a 403/429 asks for, or None when it is not a rate limit (e.g. no permission).

    ``Retry-After`` wins; else ``X-RateLimit-Remaining: 0`` means wait for
    ``X-RateLimit-Reset``; else a 429 or a message naming a rate limit waits a minute.
    """
    if response.status_code not in (403, 429):
        return None
    headers = response.headers
    text = message(response)
    retry_after = (headers.get("retry-after") or "").strip()
    if retry_after.isascii() and retry_after.isdigit():
        seconds = min(max(int(retry_after), 1), int(MAX_PAUSE.total_seconds()))
        reason = f"{response.status_code} rate limited, Retry-After {seconds}s: {text}"
        return ApiRateLimited(now + timedelta(seconds=seconds), reason)
    if headers.get("x-ratelimit-remaining") == "0":
        return ApiRateLimited(reset_time(response, now),
                              f"{response.status_code} rate limit used up until reset: {text}")
    if response.status_code == 429 or "rate limit" in text.lower():
        return ApiRateLimited(now + DEFAULT_PAUSE, f"{response.status_code} {text}")
    return None


def refuse(response: httpx.Response, now: datetime, *, allow: tuple[int, ...] = (304,)) -> None:
    """Raise for any answer that is neither 2xx nor one of ``allow``."""
    if response.status_code < 300 or response.status_code in allow:
        return
    limited = rate_limit_pause(response, now)
    if limited is not None:
        raise limited
    raise ApiUnavailable(f"{response.request.method} {response.request.url.path} answered "
                         f"{response.status_code}: {message(response)}")


def get(http: httpx.Client, url: str, **kwargs: Any) -> httpx.Response:
    """``http.get`` with timeouts and connection failures turned into ``ApiUnavailable``."""
    try:
        return http.get(url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ApiUnavailable(f"GET {url} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"GET {url} failed: {type(exc).__name__}: {exc}") from None


def next_url(response: httpx.Response) -> str | None:
    """The next page of a paginated answer (its ``Link: rel="next"``), or None."""
    return response.links.get("next", {}).get("url")


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object; ``ApiUnavailable`` when it is missing, gone or not an object."""
    path = response.request.url.path
    if response.status_code in (404, 410):
        raise ApiUnavailable(f"GET {path} answered {response.status_code}")
    try:
        data = response.json()
    except ValueError:
        raise ApiUnavailable(f"GET {path} answered without JSON") from None
    if not isinstance(data, dict):
        raise ApiUnavailable(f"GET {path} answered {type(data).__name__}")
    return data
