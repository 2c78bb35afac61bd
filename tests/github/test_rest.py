"""The shared GitHub REST client: endpoint names and how answers map to errors.

Job logs, commit files and reruns are read from the fake GitHub over loopback HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from bot.github import rest
from bot.github.rest import (
    ApiRateLimited,
    ApiUnavailable,
    Gone,
    RerunRefused,
    RerunUncertain,
    commit_files,
    job_log_tail,
    logs_url,
    rerun_failed_jobs,
    rerun_job,
)
from tests.fakes.github_api import FakeCommit, FakeGitHub

REPO = "pytorch/pytorch"
TOKEN = "ghp_test_token"
NOW = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)


def test_logs_url() -> None:
    assert logs_url("pytorch/pytorch", 42) == (
        "https://api.github.com/repos/pytorch/pytorch/actions/jobs/42/logs"
    )
    local = logs_url("o/r", 7, api="http://127.0.0.1:9")
    assert local == "http://127.0.0.1:9/repos/o/r/actions/jobs/7/logs"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


def failed_job(github: FakeGitHub, log: str | None) -> int:
    run = github.add_run(REPO, "a" * 40, conclusion="failure")
    return github.add_job(run, "test (inductor, 1, 1)", conclusion="failure", log=log).id


def tail(github: FakeGitHub, job_id: int, max_bytes: int = rest.LOG_TAIL_BYTES) -> rest.LogTail:
    with rest.client(github.url, TOKEN) as api, rest.blob_client() as blob:
        return job_log_tail(api, blob, REPO, job_id, NOW, max_bytes=max_bytes)


def test_log_follows_the_redirect_without_sending_the_token_there(github: FakeGitHub) -> None:
    job = failed_job(github, "line 1\nFAILED a.py::t - boom\n")
    got = tail(github, job)
    assert got.text == "line 1\nFAILED a.py::t - boom\n" and not got.truncated
    [api] = github.requests_to(f"/repos/{REPO}/actions/jobs/{job}/logs")
    assert api.headers["authorization"] == f"Bearer {TOKEN}"
    [blob] = github.requests_to("/_logs/")
    assert "authorization" not in blob.headers
    assert blob.headers["range"] == f"bytes=-{rest.LOG_TAIL_BYTES}"


@pytest.mark.parametrize("ranges", [True, False])
def test_only_the_tail_is_kept_and_starts_at_a_whole_line(github: FakeGitHub,
                                                           ranges: bool) -> None:
    github.blob_ranges = ranges
    lines = [f"line {i:05d}" for i in range(5000)]
    job = failed_job(github, "\n".join(lines) + "\n")
    got = tail(github, job, max_bytes=1000)
    assert got.truncated
    assert got.text.endswith("line 04999\n")
    assert got.text.startswith("line "), "a cut first line is dropped"
    assert len(got.text.encode()) <= 1000
    assert got.bytes_read == (1000 if ranges else len("\n".join(lines)) + 1)


def test_expired_and_unknown_logs_are_gone(github: FakeGitHub) -> None:
    job = failed_job(github, "x")
    github.expired_logs.add(job)
    with pytest.raises(Gone):
        tail(github, job)
    with pytest.raises(Gone):
        tail(github, 999_999)
    no_blob = failed_job(github, None)  # the API redirects, the blob store has nothing
    with pytest.raises(Gone):
        tail(github, no_blob)


def test_an_empty_log_is_empty(github: FakeGitHub) -> None:
    assert tail(github, failed_job(github, "")) == rest.LogTail("", 0, False)


def test_rate_limits_and_server_errors_are_named(github: FakeGitHub) -> None:
    job = failed_job(github, "x")
    github.fail_next(f"/repos/{REPO}/actions/jobs/{job}/logs")  # secondary limit, Retry-After 1
    with pytest.raises(ApiRateLimited) as limited:
        tail(github, job)
    assert 0 < (limited.value.until - NOW).total_seconds() <= 2
    github.exhaust_rate_limit(reset_in=120)
    with pytest.raises(ApiRateLimited):
        tail(github, job)
    github.rate_remaining = 100
    github.fail_next(f"/repos/{REPO}/actions/jobs/{job}/logs", status=502)
    with pytest.raises(ApiUnavailable):
        tail(github, job)
    github.fail_next("/_logs/", status=500)
    with pytest.raises(ApiUnavailable) as blob_error:
        tail(github, job)
    assert "sig=" not in str(blob_error.value), "the signed query is not logged"


def test_commit_files_lists_what_a_commit_touched(github: FakeGitHub) -> None:
    github.set_commits(REPO, "main", [FakeCommit("b" * 40, files=("torch/_inductor/ir.py",
                                                                  "test/inductor/test_x.py"))])
    with rest.client(github.url, TOKEN) as api:
        got = commit_files(api, REPO, "b" * 40, NOW)
        assert got == rest.CommitFiles(("torch/_inductor/ir.py", "test/inductor/test_x.py"),
                                       False)
        with pytest.raises(Gone):
            commit_files(api, REPO, "c" * 40, NOW)


def test_rerun_starts_a_new_attempt_once_and_refuses_while_running(github: FakeGitHub) -> None:
    run = github.add_run(REPO, "a" * 40, conclusion="failure")
    first = github.add_job(run, "test (inductor, 1, 2)", conclusion="failure")
    second = github.add_job(run, "test (inductor, 2, 2)", conclusion="failure")
    with rest.client(github.url, TOKEN) as api:
        rerun_job(api, REPO, first.id, NOW)
        [(old, new)] = github.reruns
        assert old == first.id and github.jobs[new].run_attempt == 2
        with pytest.raises(RerunRefused, match="already running"):
            rerun_job(api, REPO, second.id, NOW)
        github.finish_job(new, "success")
        with pytest.raises(RerunRefused, match="no failed jobs"):
            rerun_failed_jobs(api, REPO, run.id, NOW)  # attempt 2 passed


def test_rerun_failed_jobs_of_a_run_in_one_attempt(github: FakeGitHub) -> None:
    run = github.add_run(REPO, "a" * 40, conclusion="failure")
    jobs = [github.add_job(run, f"test (inductor, {i}, 2)", conclusion="failure")
            for i in (1, 2)]
    with rest.client(github.url, TOKEN) as api:
        rerun_failed_jobs(api, REPO, run.id, NOW)
    assert sorted(old for old, _ in github.reruns) == sorted(j.id for j in jobs)
    assert {github.jobs[new].run_attempt for _, new in github.reruns} == {2}


def test_a_rerun_answered_with_a_5xx_is_uncertain(github: FakeGitHub) -> None:
    run = github.add_run(REPO, "a" * 40, conclusion="failure")
    job = github.add_job(run, "test (inductor, 1, 1)", conclusion="failure")
    github.rerun_fail_status, github.rerun_fail_times = 502, 1
    with rest.client(github.url, TOKEN) as api, pytest.raises(RerunUncertain):
        rerun_job(api, REPO, job.id, NOW)
    assert len(github.reruns) == 1, "it started anyway: GitHub's POST is not idempotent"


def test_run_state_says_whether_a_run_has_finished_and_its_attempt(github: FakeGitHub) -> None:
    run = github.add_run(REPO, "a" * 40, conclusion="failure")
    failed = github.add_job(run, "test (inductor, 1, 1)", conclusion="failure")
    with rest.client(github.url, TOKEN) as api:
        assert rest.run_state(api, REPO, run.id, NOW) == rest.RunState("completed", 1)
        rerun_job(api, REPO, failed.id, NOW)
        assert rest.run_state(api, REPO, run.id, NOW) == rest.RunState("queued", 2)
        assert rest.run_attempt(api, REPO, run.id, NOW) == 2
        with pytest.raises(Gone):
            rest.run_state(api, REPO, 999_999, NOW)
        github.fail_next(f"/repos/{REPO}/actions/runs/", status=200, body={"id": run.id})
        with pytest.raises(ApiUnavailable, match="run_attempt"):
            rest.run_state(api, REPO, run.id, NOW)
