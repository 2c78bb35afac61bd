"""The GitHub and HUD fakes behave like the real services where clients can go wrong."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from bot.ingest.hud import parse_hud_page
from tests.fakes.github_api import FakeCommit, FakeGitHub
from tests.fakes.hud_api import BOT_HEADER, FakeHud

REPO = "pytorch/pytorch"
AUTH = {"Authorization": "Bearer tok"}
SHAS = [f"{i:040x}" for i in range(7, 0, -1)]  # newest first


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token="tok", rate_limit=100) as fake:
        history = [FakeCommit(sha, f"Commit {sha[-1]} (#{i})") for i, sha in enumerate(SHAS)]
        fake.set_commits(REPO, "main", history)
        yield fake


@pytest.fixture
def client(github: FakeGitHub) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=github.url, headers=AUTH, timeout=5) as c:
        yield c


def test_commits_paginate_with_link_headers(github: FakeGitHub, client: httpx.Client) -> None:
    seen: list[str] = []
    url: str | None = f"/repos/{REPO}/commits?sha=main&per_page=3"
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        seen += [c["sha"] for c in response.json()]
        url = response.links.get("next", {}).get("url")
        pages += 1
    assert seen == SHAS
    assert pages == 3
    first = client.get(f"/repos/{REPO}/commits", params={"sha": "main", "per_page": 3}).json()[0]
    assert first["commit"]["message"] == "Commit 7 (#0)"
    assert first["author"]["login"] == "alice"
    assert first["parents"] == [{"sha": SHAS[1]}]


def test_etag_304_does_not_use_rate_limit(github: FakeGitHub, client: httpx.Client) -> None:
    first = client.get(f"/repos/{REPO}/commits")
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert remaining == 99
    again = client.get(f"/repos/{REPO}/commits", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert int(again.headers["X-RateLimit-Remaining"]) == remaining
    github.push_commit(REPO, "main", "f" * 40)
    changed = client.get(f"/repos/{REPO}/commits", headers={"If-None-Match": first.headers["ETag"]})
    assert changed.status_code == 200
    assert changed.json()[0]["sha"] == "f" * 40
    assert int(changed.headers["X-RateLimit-Remaining"]) == remaining - 1


def test_primary_and_secondary_rate_limits(github: FakeGitHub, client: httpx.Client) -> None:
    github.fail_next(f"/repos/{REPO}/actions/runs")
    limited = client.get(f"/repos/{REPO}/actions/runs")
    assert limited.status_code == 403
    assert limited.headers["Retry-After"] == "1"
    assert "secondary rate limit" in limited.json()["message"]
    assert client.get(f"/repos/{REPO}/actions/runs").status_code == 200

    github.exhaust_rate_limit(reset_in=120)
    exhausted = client.get(f"/repos/{REPO}/commits")
    assert exhausted.status_code == 403
    assert exhausted.headers["X-RateLimit-Remaining"] == "0"
    assert int(exhausted.headers["X-RateLimit-Reset"]) >= time.time() + 100


def test_token_is_required_when_configured(github: FakeGitHub) -> None:
    assert httpx.get(f"{github.url}/repos/{REPO}/commits").status_code == 401
    legacy = httpx.get(f"{github.url}/repos/{REPO}/commits", headers={"Authorization": "token tok"})
    assert legacy.status_code == 200


def test_jobs_filter_latest_vs_all_and_logs(github: FakeGitHub, client: httpx.Client) -> None:
    run = github.add_run(REPO, SHAS[0], conclusion="failure")
    first = github.add_job(run, "test (default, 1, 2)", conclusion="failure", log="boom\n")
    github.add_job(run, "test (default, 1, 2)", conclusion="success", attempt=2)
    jobs_url = f"/repos/{REPO}/actions/runs/{run.id}/jobs"
    everything = client.get(jobs_url, params={"filter": "all"}).json()
    latest = client.get(jobs_url).json()
    assert [j["run_attempt"] for j in everything["jobs"]] == [1, 2]
    assert [j["run_attempt"] for j in latest["jobs"]] == [2]
    assert everything["jobs"][0]["workflow_name"] == "trunk"
    log = client.get(f"/repos/{REPO}/actions/jobs/{first.id}/logs")
    assert log.status_code == 302
    assert client.get(log.headers["Location"]).text == "boom\n"


def test_dispatch_can_fail_after_creating_a_late_run(
    github: FakeGitHub, client: httpx.Client
) -> None:
    github.add_workflow(REPO, ".github/workflows/trunk.yml")
    github.fail_dispatch_after_creating_run(status=502)
    github.dispatched_run_hidden_for = 1
    body = {"ref": f"trunk/{SHAS[3]}", "inputs": {"jobs-to-include": "test (default)"}}
    answer = client.post(f"/repos/{REPO}/actions/workflows/trunk.yml/dispatches", json=body)
    assert answer.status_code == 502
    assert len(github.dispatches) == 1
    runs_url = f"/repos/{REPO}/actions/workflows/trunk.yml/runs"
    assert client.get(runs_url).json()["total_count"] == 0  # not listed yet
    runs = client.get(runs_url).json()["workflow_runs"]
    assert [(r["head_sha"], r["event"], r["status"]) for r in runs] == [
        (SHAS[3], "workflow_dispatch", "queued")
    ]
    retry = client.post(f"/repos/{REPO}/actions/workflows/trunk.yml/dispatches", json=body)
    assert retry.status_code == 204


def test_delay_provokes_client_timeout(github: FakeGitHub) -> None:
    github.delay_next(f"/repos/{REPO}/commits", seconds=2)
    with httpx.Client(base_url=github.url, headers=AUTH, timeout=0.2) as impatient:
        with pytest.raises(httpx.TimeoutException):
            impatient.get(f"/repos/{REPO}/commits")
        assert github.wait_for(lambda: len(github.requests_to(f"/repos/{REPO}/commits")) == 1)


def test_hud_pages_parse_and_record_the_bot_header() -> None:
    name_a = "inductor / cuda12.8 / test (inductor_huggingface, 1, 2, linux.g5)"
    name_b = "inductor / cuda12.8 / test (inductor_timm, 1, 1, linux.g5)"
    rows = [(SHAS[0], {name_a: "failure"}), (SHAS[1], {name_b: "success"}), (SHAS[2], {})]
    with FakeHud() as hud:
        hud.set_rows(REPO, "main", rows)
        first = httpx.get(
            f"{hud.url}/api/hud/{REPO}/main/1", params={"per_page": 2}, headers={BOT_HEADER: "s"}
        )
        second = httpx.get(f"{hud.url}/api/hud/{REPO}/main/2", params={"per_page": 2})
        hud.fail_next("/api/hud/", status=503)
        failed = httpx.get(f"{hud.url}/api/hud/{REPO}/main/1")
        assert hud.bot_headers == ["s", None, None]
    page = parse_hud_page(first.json(), REPO)
    assert [c.sha for c in page.commits] == SHAS[:2]
    assert [(r.sha, r.conclusion) for r in page.results] == [
        (SHAS[0], "failure"),
        (SHAS[1], "success"),
    ]
    assert page.results[0].failure_lines
    assert [c.sha for c in parse_hud_page(second.json(), REPO).commits] == [SHAS[2]]
    assert failed.status_code == 503
