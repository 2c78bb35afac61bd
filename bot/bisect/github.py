"""The ``github`` bisect backend's REST calls: dispatch a workflow, find the run it started.

``workflow_dispatch`` answers 204 without a run id and is not idempotent (a 5xx or a
timeout may still have started a run), so callers find runs by commit and time, or
by a correlation id carried in an input, and look before they dispatch again.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bot.domain.model import JobResult
from bot.domain.payload import PayloadError, parse_timestamp
from bot.github import rest
from bot.github.jobs import job_from_api
from bot.github.rest import ApiUnavailable, json_object, message, next_url

CLOCK_SKEW = timedelta(minutes=2)  # GitHub's clock and ours may disagree a little
CORRELATION_MARK = "inductor-bot-"  # every correlation id starts with it
MAX_PAGES = 5


class DispatchUncertain(Exception):
    """The dispatch may or may not have started a run (5xx, timeout, dropped connection)."""


class DispatchRefused(Exception):
    """GitHub refused the dispatch (4xx other than a rate limit): no run was started."""


@dataclass(frozen=True, slots=True)
class WorkflowRun:
    """The few fields of a workflow run a bisect needs."""

    id: int
    head_sha: str
    status: str
    conclusion: str | None
    created_at: datetime | None
    html_url: str | None
    title: str  # display_title (the workflow's run-name), else name

    @property
    def completed(self) -> bool:
        return self.status == "completed"


class GitHubDispatcher:
    """Dispatches workflows and reads runs over GitHub's REST API (``GITHUB_API_URL``)."""

    def __init__(self, api_url: str, token: str | None, *, timeout: float = 10.0,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock
        self._client = rest.client(api_url, token, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> GitHubDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- dispatch ---------------------------------------------------------------------

    def dispatch(self, repo: str, workflow_file: str, ref: str,
                 inputs: Mapping[str, str]) -> None:
        """Start ``workflow_file`` on ``ref``; returns on 204.

        Raises ``DispatchUncertain`` when a run may exist anyway, ``ApiRateLimited`` when
        GitHub asked to wait (nothing started), ``DispatchRefused`` for other 4xx.
        """
        path = f"/repos/{repo}/actions/workflows/{workflow_file}/dispatches"
        body = {"ref": ref, "inputs": dict(inputs)}
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise DispatchUncertain(f"dispatch timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise DispatchUncertain(f"dispatch failed: {type(exc).__name__}: {exc}") from None
        if response.status_code in (200, 201, 204):
            return
        if response.status_code >= 500:
            raise DispatchUncertain(f"dispatch answered {response.status_code}: "
                                    f"{message(response)}")
        limited = rest.rate_limit_pause(response, self._now())
        if limited is not None:
            raise limited
        raise DispatchRefused(f"GitHub refused to dispatch {workflow_file} on {ref}: "
                              f"{response.status_code} {message(response)}")

    # --- runs -------------------------------------------------------------------------

    def find_run(self, repo: str, workflow_file: str, head_sha: str | None, since: datetime,
                 correlation_id: str | None = None,
                 exclude: Collection[int] = ()) -> WorkflowRun | None:
        """The oldest dispatched run created since ``since`` that is this probe's, or None.

        A run must be at ``head_sha`` when it is given. With ``correlation_id`` a run
        whose title (the workflow's ``run-name`` quoting the input) shows it wins; a
        run showing another probe's id is never taken; without ``head_sha`` the id is
        required. Runs in ``exclude`` belong to other probes already.
        """
        params: dict[str, Any] = {
            "event": "workflow_dispatch",
            "created": f">={(since - CLOCK_SKEW).strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "per_page": 100,
        }
        if head_sha:
            params["head_sha"] = head_sha
        tagged: list[WorkflowRun] = []
        untagged: list[WorkflowRun] = []
        for run in self._runs(f"/repos/{repo}/actions/workflows/{workflow_file}/runs", params):
            if run.id in exclude or (head_sha and run.head_sha != head_sha):
                continue
            if run.created_at is not None and run.created_at < since - CLOCK_SKEW:
                continue
            if correlation_id and correlation_id in run.title:
                tagged.append(run)
            elif head_sha and CORRELATION_MARK not in run.title:
                untagged.append(run)
        return min(tagged or untagged, key=lambda r: (r.created_at or since, r.id), default=None)

    def get_run(self, repo: str, run_id: int) -> WorkflowRun | None:
        """One run by id; None when GitHub no longer knows it."""
        response = self._get(f"/repos/{repo}/actions/runs/{run_id}")
        if response.status_code in (404, 410):
            return None
        return _run(response.json())

    def run_jobs(self, repo: str, run_id: int) -> list[JobResult]:
        """Every job attempt of a run (``filter=all``), as results for the ingest path."""
        results: list[JobResult] = []
        url: str | None = f"/repos/{repo}/actions/runs/{run_id}/jobs"
        params: dict[str, Any] | None = {"filter": "all", "per_page": 100}
        for _ in range(MAX_PAGES):
            if url is None:
                break
            response = self._get(url, params)
            data = json_object(response)
            try:
                results += [job_from_api(job, repo) for job in data.get("jobs") or []]
            except PayloadError as exc:
                raise ApiUnavailable(f"unexpected jobs answer for run {run_id}: {exc}") from None
            url, params = next_url(response), None
        return results

    def _runs(self, url: str, params: dict[str, Any]) -> Iterator[WorkflowRun]:
        page_url: str | None = url
        query: dict[str, Any] | None = params
        for _ in range(MAX_PAGES):
            if page_url is None:
                return
            response = self._get(page_url, query)
            for raw in json_object(response).get("workflow_runs") or []:
                yield _run(raw)
            page_url, query = next_url(response), None

    def _get(self, url: str, params: Mapping[str, Any] | None = None) -> httpx.Response:
        """A GET whose 404/410 is an answer (the run is gone), anything else not 2xx an error."""
        response = rest.get(self._client, url, params=params)
        rest.refuse(response, self._now(), allow=(404, 410))
        return response

    def _now(self) -> datetime:
        return self.clock() if self.clock is not None else datetime.now(UTC)


def _run(raw: Any) -> WorkflowRun:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
        raise ApiUnavailable(f"unexpected workflow run object: {str(raw)[:200]}")
    try:
        created = parse_timestamp(raw.get("created_at"), "run.created_at")
    except PayloadError:
        created = None
    return WorkflowRun(
        id=raw["id"],
        head_sha=str(raw.get("head_sha") or ""),
        status=str(raw.get("status") or ""),
        conclusion=raw.get("conclusion"),
        created_at=created,
        html_url=raw.get("html_url"),
        title=str(raw.get("display_title") or raw.get("name") or ""),
    )
