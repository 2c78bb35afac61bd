"""GitHub job objects to domain results: one set of checks for webhooks and the REST API."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any

from bot.domain.model import JobResult
from bot.domain.payload import (
    EARLIEST_YEAR,
    LATEST_YEAR,
    MAX_INT,
    checked,
    field_of,
    optional_field,
    parse_timestamp,
    sha_field,
)


def job_result(job: Mapping[str, Any], repo: str, source: str, path: str) -> JobResult:
    """The fields webhook and REST job objects share, under one set of checks.

    Replay and back-fill read tens of thousands of these: a job whose every field has
    the expected shape takes a quick path; anything else goes through the field-by-field
    checks, which name the first field that is wrong.
    """
    quick = quick_job_result(job, repo, source)
    return quick if quick is not None else _checked(job, repo, source, path)


_SHA = re.compile(r"[0-9a-f]{40}").fullmatch
_REQUIRED = itemgetter("head_sha", "workflow_name", "name", "status", "id")
_FIELDS = itemgetter("head_sha", "workflow_name", "name", "status", "id", "head_branch",
                     "run_id", "run_attempt", "conclusion", "html_url", "started_at",
                     "completed_at")
# shas already checked: a commit's hundreds of runs name the same one (bounded: cleared
# when full, so a long replay holds no more than this)
_SHAS_SEEN: dict[str, None] = {}
SHAS_REMEMBERED = 4096
_LOW, _HIGH = -MAX_INT - 1, MAX_INT
_str, _int = str, int
_fromisoformat = datetime.fromisoformat


def _time(value: Any) -> datetime | None:
    """GitHub's own shape (``2021-08-05T10:34:58Z``) or nothing; else ``ValueError``."""
    if value is None or value == "":
        return None
    if type(value) is _str and len(value) == 20 and value[19] == "Z":
        when = datetime.fromisoformat(value)
        if EARLIEST_YEAR <= when.year < LATEST_YEAR:
            return when
    raise ValueError(value)


def quick_job_result(job: Mapping[str, Any], repo: str, source: str) -> JobResult | None:
    """The result when every field is exactly as GitHub sends it, else None.

    Checks the same things as ``_checked`` (types, a lower-case 40-hex sha, integers
    SQLite can hold, sane times) without naming fields: whatever it refuses goes
    through ``_checked``, which names the first field that is wrong.
    """
    try:
        try:
            (sha, workflow, name, status, job_id, branch, run_id, attempt, conclusion, html,
             started, completed) = _FIELDS(job)  # one call for the twelve (GitHub sends all)
        except KeyError:  # an optional field left out
            sha, workflow, name, status, job_id = _REQUIRED(job)
            get = job.get
            branch, run_id, attempt = get("head_branch"), get("run_id"), get("run_attempt")
            conclusion, html = get("conclusion"), get("html_url")
            started, completed = get("started_at"), get("completed_at")
        if sha not in _SHAS_SEEN:
            if not (type(sha) is _str and _SHA(sha)):
                return None
            if len(_SHAS_SEEN) >= SHAS_REMEMBERED:
                _SHAS_SEEN.clear()
            _SHAS_SEEN[sha] = None
        if not (type(workflow) is _str
                and type(name) is _str and type(status) is _str
                and type(job_id) is _int and _LOW <= job_id <= _HIGH
                and (branch is None or type(branch) is _str)
                and (run_id is None or type(run_id) is _int and _LOW <= run_id <= _HIGH)
                and (attempt is None or type(attempt) is _int and _LOW <= attempt <= _HIGH)
                and (conclusion is None or type(conclusion) is _str)
                and (html is None or type(html) is _str)):
            return None
        # GitHub's own shape (``2021-08-05T10:34:58Z``) parsed in line: ``_time`` costs a
        # call per field, and replay reads two of these for every run
        if type(started) is _str and len(started) == 20 and started[19] == "Z":
            started = _fromisoformat(started)
            if not EARLIEST_YEAR <= started.year < LATEST_YEAR:
                return None
        else:
            started = _time(started)
        if type(completed) is _str and len(completed) == 20 and completed[19] == "Z":
            completed = _fromisoformat(completed)
            if not EARLIEST_YEAR <= completed.year < LATEST_YEAR:
                return None
        else:
            completed = _time(completed)
    except (KeyError, TypeError, ValueError):
        return None
    return JobResult(repo, sha, workflow, name, job_id, status, conclusion, run_id,
                     1 if attempt is None else attempt, branch, html, None, started, completed,
                     (), source)


def _checked(job: Mapping[str, Any], repo: str, source: str, path: str) -> JobResult:
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
