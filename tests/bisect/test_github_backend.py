"""The github bisect backend's REST calls against the fake GitHub: dispatch and finding runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from bot.bisect.github import (
    DispatchRefused,
    DispatchUncertain,
    GitHubDispatcher,
)
from bot.github.rest import ApiRateLimited
from tests.fakes.github_api import FakeGitHub

REPO = "pytorch/pytorch"
WORKFLOW = "inductor.yml"
TOKEN = "ghs-test"
SHA = "a" * 40
OTHER = "b" * 40


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as github:
        github.add_workflow(REPO, ".github/workflows/inductor.yml")
        yield github


@pytest.fixture
def api(fake: FakeGitHub) -> Iterator[GitHubDispatcher]:
    with GitHubDispatcher(fake.url, TOKEN, timeout=2.0) as dispatcher:
        yield dispatcher


def a_minute_ago() -> datetime:
    return datetime.now(UTC) - timedelta(minutes=1)


def test_dispatch_sends_ref_and_inputs_and_returns_on_204(fake: FakeGitHub,
                                                         api: GitHubDispatcher) -> None:
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {"jobs-to-include": "test (timm)"})
    [dispatch] = fake.dispatches
    assert dispatch.ref == f"trunk/{SHA}" and dispatch.inputs == {"jobs-to-include": "test (timm)"}
    [request] = fake.requests_to(f"/repos/{REPO}/actions/workflows/{WORKFLOW}/dispatches")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    run = api.find_run(REPO, WORKFLOW, SHA, a_minute_ago())
    assert run is not None and run.id == dispatch.run_id and run.head_sha == SHA
    assert not run.completed


def test_a_5xx_after_the_run_started_is_uncertain_and_the_run_is_found(
        fake: FakeGitHub, api: GitHubDispatcher) -> None:
    fake.fail_dispatch_after_creating_run(502)
    with pytest.raises(DispatchUncertain, match="502"):
        api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    run = api.find_run(REPO, WORKFLOW, SHA, a_minute_ago())
    assert run is not None and run.id == fake.dispatches[0].run_id


def test_a_timeout_is_uncertain_too(fake: FakeGitHub) -> None:
    fake.delay_next(f"/repos/{REPO}/actions/workflows/{WORKFLOW}/dispatches", 0.5)
    with GitHubDispatcher(fake.url, TOKEN, timeout=0.2) as api, \
            pytest.raises(DispatchUncertain, match="timed out"):
        api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    assert fake.wait_for(lambda: len(fake.dispatches) == 1)  # GitHub started it anyway


def test_refusals_and_rate_limits_start_nothing(fake: FakeGitHub,
                                                 api: GitHubDispatcher) -> None:
    with pytest.raises(DispatchRefused, match="404"):
        api.dispatch(REPO, "missing.yml", f"trunk/{SHA}", {})
    fake.fail_next(f"/repos/{REPO}/actions/workflows/{WORKFLOW}/dispatches", 403)
    with pytest.raises(ApiRateLimited):
        api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    with pytest.raises(DispatchRefused, match="422"):
        api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {str(i): "x" for i in range(11)})
    assert fake.dispatches == []


def test_a_run_that_github_lists_late_is_found_once_listed(fake: FakeGitHub,
                                                           api: GitHubDispatcher) -> None:
    fake.dispatched_run_hidden_for = 2
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    since = a_minute_ago()
    assert api.find_run(REPO, WORKFLOW, SHA, since) is None
    assert api.find_run(REPO, WORKFLOW, SHA, since) is None
    run = api.find_run(REPO, WORKFLOW, SHA, since)
    assert run is not None and run.id == fake.dispatches[0].run_id


def test_find_run_skips_other_commits_older_runs_and_claimed_runs(
        fake: FakeGitHub, api: GitHubDispatcher) -> None:
    old = fake.add_run(REPO, SHA, path=".github/workflows/inductor.yml", event="workflow_dispatch",
                       created_at=datetime.now(UTC) - timedelta(hours=3))
    api.dispatch(REPO, WORKFLOW, f"trunk/{OTHER}", {})
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    first, second = (d.run_id for d in fake.dispatches[1:])
    since = a_minute_ago()
    found = api.find_run(REPO, WORKFLOW, SHA, since)
    assert found is not None and found.id == first and found.id != old.id
    again = api.find_run(REPO, WORKFLOW, SHA, since, exclude={first})
    assert again is not None and again.id == second
    assert api.find_run(REPO, WORKFLOW, SHA, since, exclude={first, second}) is None


def test_correlation_ids_tell_runs_at_the_same_commit_apart(fake: FakeGitHub,
                                                           api: GitHubDispatcher) -> None:
    fake.dispatch_run_name = lambda inputs: f"inductor {inputs.get('tag', '')}".strip()
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {"tag": "inductor-bot-1-7-1"})
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {"tag": "inductor-bot-1-8-1"})
    mine = fake.dispatches[1].run_id
    since = a_minute_ago()
    run = api.find_run(REPO, WORKFLOW, SHA, since, correlation_id="inductor-bot-1-8-")
    assert run is not None and run.id == mine and "inductor-bot-1-8-1" in run.title
    assert api.find_run(REPO, WORKFLOW, SHA, since, correlation_id="inductor-bot-1-9-") is None
    # without a commit in the ref, only the correlation id can identify the run
    run = api.find_run(REPO, WORKFLOW, None, since, correlation_id="inductor-bot-1-7-")
    assert run is not None and run.id == fake.dispatches[0].run_id


def test_run_jobs_and_get_run(fake: FakeGitHub, api: GitHubDispatcher) -> None:
    api.dispatch(REPO, WORKFLOW, f"trunk/{SHA}", {})
    run = fake.runs[fake.dispatches[0].run_id]
    fake.add_job(run, "build / test (timm, 1, 1, linux.g5)", conclusion="failure")
    fake.add_job(run, "build / test (timm, 1, 1, linux.g5)", conclusion="success", attempt=2)
    run.status, run.conclusion = "completed", "success"
    jobs = api.run_jobs(REPO, run.id)
    assert [(j.sha, j.workflow, j.attempt, j.conclusion) for j in jobs] == [
        (SHA, "inductor", 1, "failure"), (SHA, "inductor", 2, "success")]
    assert all(j.run_id == run.id and j.branch == f"trunk/{SHA}" for j in jobs)
    got = api.get_run(REPO, run.id)
    assert got is not None and got.completed and got.conclusion == "success"
    assert api.get_run(REPO, 999_999) is None
