"""GitHub's REST API over httpx: the client, and every answer mapped to a result or a named error.

``client()`` builds the one ``httpx.Client`` shape every caller uses (token, API version,
base URL, timeout). ``get``/``post`` turn timeouts and dropped connections into
``ApiUnavailable``; ``refuse`` turns an answer that is not a success into
``ApiRateLimited`` (wait until a time GitHub named) or ``ApiUnavailable`` (try again
later). HUD's API answers by the same HTTP conventions, so its poller uses these too.

New endpoints are small functions over a client: ``job_log_tail`` reads the end of a
job's log (the endpoint answers a redirect to blob storage, read with ``blob_client``,
which never carries the token), ``commit_files`` the files a commit touched,
``run_state`` a run's status, ``rerun_job``/``rerun_failed_jobs`` start reruns. ``Gone``
says asking again will not help.
"""

from __future__ import annotations

from dataclasses import dataclass
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


class Gone(Exception):
    """404/410: the thing is not there (an expired job log, a deleted commit or run);
    asking again will not bring it back."""


class RerunRefused(Exception):
    """GitHub refused a rerun (e.g. 403 "already running", no permission); nothing started."""


class RerunUncertain(Exception):
    """A rerun request timed out or got a 5xx: it may have started anyway; look before retrying."""


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


def blob_client(*, timeout: float = 30.0) -> httpx.Client:
    """A client for where GitHub redirects log downloads: no token, no API headers.

    The redirect target is a pre-signed blob URL on another host; the bot's token must
    never travel there, so logs are read with this client, not the API's.
    """
    return httpx.Client(timeout=httpx.Timeout(timeout), headers={"User-Agent": USER_AGENT})


def logs_url(repo: str, job_id: int, api: str = GITHUB_API) -> str:
    """Where a job's log lives. Webhooks carry no log URL; this endpoint answers a redirect."""
    return f"{api}/repos/{repo}/actions/jobs/{job_id}/logs"


LOG_TAIL_BYTES = 1 << 20  # the end of a log that is read: PyTorch logs end with the summary
MAX_LOG_READ = 64 << 20  # a blob server that ignores Range is read this far, no further


@dataclass(frozen=True, slots=True)
class LogTail:
    """The end of a job's log: ``text`` (whole lines), how many bytes were read, and
    whether the log was longer than what ``text`` holds."""

    text: str
    bytes_read: int
    truncated: bool


def job_log_tail(http: httpx.Client, blob: httpx.Client, repo: str, job_id: int,
                 now: datetime, *, max_bytes: int = LOG_TAIL_BYTES) -> LogTail:
    """The last ``max_bytes`` of a job's log.

    ``GET /repos/{repo}/actions/jobs/{job_id}/logs`` answers a redirect (302) to a short-
    lived blob URL, which is read with ``blob`` (no token) asking ``Range: bytes=-N``; a
    server that ignores the range is streamed and only the last ``max_bytes`` are kept
    (up to ``MAX_LOG_READ``). Raises ``Gone`` for an expired or deleted log (404/410),
    ``ApiRateLimited`` when asked to wait, ``ApiUnavailable`` otherwise.
    """
    response = get(http, f"/repos/{repo}/actions/jobs/{job_id}/logs", follow_redirects=False)
    if response.status_code in (404, 410):
        raise Gone(f"the log of job {job_id} is gone ({response.status_code}: "
                   f"{message(response)})")
    if response.status_code in (301, 302, 303, 307, 308):
        location = response.headers.get("location", "")
        if not location.lower().startswith(("https://", "http://")):
            raise ApiUnavailable(f"job {job_id} logs redirected to {location[:100]!r}")
        return _read_tail(blob, location, max_bytes, {"Range": f"bytes=-{max_bytes}"})
    refuse(response, now)
    return _tail_of(response.content, max_bytes, len(response.content))  # served in place


def _read_tail(blob: httpx.Client, url: str, max_bytes: int,
               headers: dict[str, str]) -> LogTail:
    where = httpx.URL(url).copy_with(query=None)  # the signed query is a credential
    try:
        with blob.stream("GET", url, headers=headers) as response:
            if response.status_code in (404, 410):
                raise Gone(f"the log blob is gone ({response.status_code})")
            if response.status_code == 416:  # an empty log has no last bytes
                return LogTail("", 0, False)
            if response.status_code >= 300:
                raise ApiUnavailable(f"log blob {where} answered {response.status_code}")
            kept = bytearray()
            read = 0
            for chunk in response.iter_bytes():
                read += len(chunk)
                kept += chunk
                if len(kept) > 2 * max_bytes:
                    del kept[: len(kept) - max_bytes]
                if read >= MAX_LOG_READ:
                    break
            # a range answer says where its bytes start: "bytes 1200-2199/2200"
            first = response.headers.get("content-range", "bytes 0-").split(" ")[-1]
            skipped = (response.status_code == 206 and first.split("-")[0].isdigit()
                       and int(first.split("-")[0]) > 0)
    except httpx.TimeoutException as exc:
        raise ApiUnavailable(f"log blob {where} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise ApiUnavailable(f"log blob {where} failed: {type(exc).__name__}") from None
    return _tail_of(bytes(kept), max_bytes, read, skipped)


def _tail_of(data: bytes, max_bytes: int, read: int, skipped: bool = False) -> LogTail:
    """The last ``max_bytes`` of ``data`` as text, starting at a whole line when cut.

    ``skipped``: the server already left out the start (a range answer).
    """
    data = data[-max_bytes:]
    cut = skipped or read > len(data)
    text = data.decode("utf-8", errors="replace")
    if cut and "\n" in text:
        text = text.split("\n", 1)[1]
    return LogTail(text, read, cut)


@dataclass(frozen=True, slots=True)
class CommitFiles:
    """The paths a commit touched (renames under both names), and whether GitHub cut the list."""

    files: tuple[str, ...]
    truncated: bool


COMMIT_FILES_SHOWN = 300  # GitHub lists at most 300 files on a commit's first page


def commit_files(http: httpx.Client, repo: str, sha: str, now: datetime) -> CommitFiles:
    """``GET /repos/{repo}/commits/{sha}``: the files a commit touched.

    ``Gone`` when GitHub does not know the commit (404, 422).
    """
    response = get(http, f"/repos/{repo}/commits/{sha}")
    if response.status_code in (404, 410, 422):
        raise Gone(f"commit {sha[:12]} of {repo}: {response.status_code} {message(response)}")
    refuse(response, now)
    data = json_object(response)
    raw = data.get("files")
    if not isinstance(raw, list):
        raise ApiUnavailable(f"commit {sha[:12]} of {repo} answered without a files list")
    files: list[str] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        for key in ("filename", "previous_filename"):
            name = item.get(key)
            if isinstance(name, str) and name and name not in files:
                files.append(name)
    return CommitFiles(tuple(files), len(raw) >= COMMIT_FILES_SHOWN)


@dataclass(frozen=True, slots=True)
class RunState:
    """A workflow run as ``GET .../actions/runs/{id}`` shows it: ``status`` (``queued``,
    ``in_progress``, ``completed``, ...) and its latest attempt number."""

    status: str
    attempt: int


def run_state(http: httpx.Client, repo: str, run_id: int, now: datetime) -> RunState:
    """``GET /repos/{repo}/actions/runs/{run_id}``: the run's status and latest attempt.

    GitHub refuses to rerun a job while its run is still running ("This workflow is
    already running"), and only reruns jobs of the latest attempt.
    """
    response = get(http, f"/repos/{repo}/actions/runs/{run_id}")
    if response.status_code in (404, 410):
        raise Gone(f"run {run_id} of {repo} is gone")
    refuse(response, now)
    data = json_object(response)
    attempt, status = data.get("run_attempt"), data.get("status")
    if isinstance(attempt, bool) or not isinstance(attempt, int):
        raise ApiUnavailable(f"run {run_id} of {repo} answered without a run_attempt")
    if not isinstance(status, str):
        raise ApiUnavailable(f"run {run_id} of {repo} answered without a status")
    return RunState(status, attempt)


def run_attempt(http: httpx.Client, repo: str, run_id: int, now: datetime) -> int:
    """The run's latest attempt number: how to tell whether a rerun whose answer was lost
    started after all."""
    return run_state(http, repo, run_id, now).attempt


def rerun_job(http: httpx.Client, repo: str, job_id: int, now: datetime) -> None:
    """``POST /repos/{repo}/actions/jobs/{job_id}/rerun`` (201): rerun one job of its run."""
    _rerun(http, f"/repos/{repo}/actions/jobs/{job_id}/rerun", now)


def rerun_failed_jobs(http: httpx.Client, repo: str, run_id: int, now: datetime) -> None:
    """``POST /repos/{repo}/actions/runs/{run_id}/rerun-failed-jobs`` (201): every failed
    job of the run's latest attempt, in one new attempt."""
    _rerun(http, f"/repos/{repo}/actions/runs/{run_id}/rerun-failed-jobs", now)


def _rerun(http: httpx.Client, path: str, now: datetime) -> None:
    """Raises ``RerunUncertain`` (timeout, 5xx: it may have started), ``ApiRateLimited``
    (nothing started, wait), ``RerunRefused`` (any other refusal)."""
    try:
        response = http.post(path, json={})
    except httpx.TimeoutException as exc:
        raise RerunUncertain(f"POST {path} timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise RerunUncertain(f"POST {path} failed: {type(exc).__name__}") from None
    if response.status_code in (200, 201, 202, 204):
        return
    if response.status_code >= 500:
        raise RerunUncertain(f"POST {path} answered {response.status_code}: "
                             f"{message(response)}")
    limited = rate_limit_pause(response, now)
    if limited is not None:
        raise limited
    raise RerunRefused(f"{response.status_code} {message(response)}".strip())


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
