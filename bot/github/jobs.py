"""GitHub job objects to domain results: one set of checks for webhooks and the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.domain.model import JobResult
from bot.domain.payload import checked, field_of, optional_field, parse_timestamp, sha_field


def job_result(job: Mapping[str, Any], repo: str, source: str, path: str) -> JobResult:
    """The fields webhook and REST job objects share, under one set of checks."""
    attempt = optional_field(job, "run_attempt", int, f"{path}.run_attempt")
    return JobResult(
        repo=repo,
        sha=sha_field(job, "head_sha", f"{path}.head_sha"),
        branch=optional_field(job, "head_branch", str, f"{path}.head_branch"),
        workflow=field_of(job, "workflow_name", str, f"{path}.workflow_name"),
        job_name=field_of(job, "name", str, f"{path}.name"),
        job_id=field_of(job, "id", int, f"{path}.id"),
        run_id=optional_field(job, "run_id", int, f"{path}.run_id"),
        attempt=1 if attempt is None else attempt,
        status=field_of(job, "status", str, f"{path}.status"),
        conclusion=optional_field(job, "conclusion", str, f"{path}.conclusion"),
        html_url=optional_field(job, "html_url", str, f"{path}.html_url"),
        log_url=None,  # not in the payload; see bot.github.rest.logs_url()
        started_at=parse_timestamp(job.get("started_at"), f"{path}.started_at"),
        completed_at=parse_timestamp(job.get("completed_at"), f"{path}.completed_at"),
        failure_lines=(),
        source=source,
    )


def job_from_api(job: Any, repo: str) -> JobResult:
    """One item of ``GET /repos/{o}/{r}/actions/runs/{run_id}/jobs`` as a poller result."""
    job = checked(job, dict, "job")
    return job_result(job, repo, "poller", "job")
