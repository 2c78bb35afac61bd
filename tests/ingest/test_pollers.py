"""GitHub and HUD pollers against local fake servers: back-fill, resume, ETags, failures, pauses."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.domain.route import Route
from bot.ingest.pollers import register_jobs
from bot.ingest.pollers.github import GitHubPoller
from bot.ingest.pollers.hud import HudPoller
from bot.ingest.replay import replay
from bot.runtime import Bot
from bot.store.db import Store
from bot.store.details import AlertDetail, alert_detail, alert_ids
from bot.web.signatures import sign_github
from tests.fakes.github_api import FakeCommit, FakeGitHub, FakeRun
from tests.fakes.hud_api import FakeHud
from tests.support.server import GITHUB_SECRET, Clock, serve, settings_for, started_bot
from tests.support.trunk import BASE_TIME, REPO, sha_for

SHAS = [sha_for(i, "poll") for i in range(12)]  # oldest first
JOBS = [f"cuda12.8 / test (inductor_timm, {i}, 2, linux.g5)" for i in (1, 2)] + [
    "cuda12.8 / test (inductor_huggingface, 1, 1, linux.g5)"]
TIMM_KEY = "inductor / cuda12.8 / test (inductor_timm)"
RUNS = f"/repos/{REPO}/actions/runs"
COMMITS = f"/repos/{REPO}/commits"


def at(index: int) -> Any:
    return BASE_TIME + timedelta(minutes=20 * index)


@contextmanager
def poller_bot(tmp_path: Path, clock: Clock, **overrides: Any) -> Iterator[Bot]:
    bot = started_bot(settings_for(tmp_path, **overrides), clock)
    try:
        yield bot
    finally:
        bot.stop()


def alerts(bot: Bot) -> list[AlertDetail]:
    db = bot.store.db
    return [d for i in alert_ids(db) if (d := alert_detail(db, i)) is not None]


def trunk(bot: Bot) -> list[str]:
    return [r[0] for r in bot.store.db.execute(
        "SELECT sha FROM commits WHERE repo = ? ORDER BY position", [REPO])]


def attempts(bot: Bot) -> set[tuple[str, str, int, str | None]]:
    return set(bot.store.db.execute(
        "SELECT sha, job_name, attempt, conclusion FROM job_results WHERE repo = ?", [REPO]))


# --- GitHub -----------------------------------------------------------------------------------


def land(github: FakeGitHub, index: int, timm: str = "success") -> FakeRun:
    """One commit on main with an inductor run (timm shards as given) and an unwatched run."""
    github.push_commit(REPO, "main", FakeCommit(SHAS[index], f"change {index} (#{100 + index})",
                                                 date=at(index)))
    run = github.add_run(REPO, SHAS[index], path=".github/workflows/inductor.yml",
                         name="inductor", created_at=at(index),
                         conclusion="failure" if timm == "failure" else "success")
    for name in JOBS:
        github.add_job(run, name, conclusion=timm if "timm" in name else "success",
                       completed_at=at(index) + timedelta(hours=1))
    pull = github.add_run(REPO, SHAS[index], path=".github/workflows/pull.yml", name="pull",
                          created_at=at(index))
    github.add_job(pull, "linux-jammy / test (default, 1, 1)", conclusion="failure")
    return run


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token="tok") as fake:
        for i in range(8):
            land(fake, i, "failure" if i >= 4 else "success")
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock(BASE_TIME + timedelta(hours=6))


def github_settings(github: FakeGitHub) -> dict[str, Any]:
    return {"github_token": "tok", "github_api_url": github.url + "/",
            "github_backfill_commits": 5}


def jobs_requests(github: FakeGitHub) -> list[str]:
    return [r.path for r in github.requests_to(RUNS) if r.path.endswith("/jobs")]


def test_register_jobs_adds_only_configured_pollers(tmp_path: Path, clock: Clock) -> None:
    with poller_bot(tmp_path, clock) as bot:
        register_jobs(bot)
        assert "github-poller" not in bot.scheduler.jobs
        assert "hud-poller" not in bot.scheduler.jobs
    with poller_bot(tmp_path / "on", clock, github_token="t", hud_url="http://127.0.0.1:9") as bot:
        assert {"github-poller", "hud-poller"} <= set(bot.scheduler.jobs)


def test_first_start_backfills_then_reads_only_what_changed(
        tmp_path: Path, github: FakeGitHub, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
        report = GitHubPoller(bot, per_page=2).poll_once()
        assert report.error is None, report.error
        assert trunk(bot) == SHAS[3:8]  # the back-fill: five newest commits, in order
        assert len(github.requests_to(COMMITS)) == 3  # 2 + 2 + 1 commits, following Link
        [alert] = alerts(bot)
        assert alert.first_red is not None and alert.first_red.sha == SHAS[4]
        assert alert.last_green is not None and alert.last_green.sha == SHAS[3]
        assert [j.key for j in alert.jobs] == [TIMM_KEY]
        fetched = jobs_requests(github)
        assert all(r.query["filter"] == "all" for r in github.requests_to(RUNS)
                   if r.path.endswith("/jobs"))
        pull_ids = {r.id for r in github.runs.values() if r.name == "pull"}
        assert not any(f"/runs/{run_id}/" in path for run_id in pull_ids for path in fetched)
        assert {sha for sha, *_ in attempts(bot)} == set(SHAS[3:8])

        again = GitHubPoller(bot, per_page=2).poll_once()
        assert again.error is None
        last_commits = github.requests_to(COMMITS)[-1]
        assert last_commits.headers.get("if-none-match")  # the stored ETag is sent...
        assert again.not_modified >= 2  # ...and commits and the run list answer 304
        assert (again.commits_placed, again.results_stored) == (0, 0)
        assert jobs_requests(github) == fetched  # completed, unchanged runs are not re-read
    # a restart resumes from the stored cursor: no second back-fill, no re-reading
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
        resumed = GitHubPoller(bot, per_page=2).poll_once()
        assert (resumed.commits_placed, resumed.results_stored) == (0, 0)
        assert jobs_requests(github) == fetched


def test_new_commits_and_reruns_are_read(tmp_path: Path, github: FakeGitHub,
                                         clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
        poller = GitHubPoller(bot, per_page=2)
        poller.poll_once()
        land(github, 8, "failure")
        land(github, 9, "failure")
        rerun = next(r for r in github.runs.values() if r.head_sha == SHAS[7] and
                     r.name == "inductor")
        github.add_job(rerun, JOBS[0], conclusion="success", attempt=2)
        report = poller.poll_once()
        assert report.error is None
        assert trunk(bot) == SHAS[3:10]
        assert (SHAS[7], JOBS[0], 2, "success") in attempts(bot)
        assert (SHAS[7], JOBS[0], 1, "failure") in attempts(bot)
        assert {(sha, attempt) for sha, _, attempt, _ in attempts(bot)} >= {(SHAS[9], 1)}
        [alert] = alerts(bot)
        assert alert.state == "open"


def test_secondary_rate_limit_pauses_and_resumes_without_loss(
        tmp_path: Path, github: FakeGitHub, clock: Clock) -> None:
    settings = github_settings(github)
    with poller_bot(tmp_path, clock, **settings) as bot:
        github.fail_next(RUNS, status=403)  # "secondary rate limit", Retry-After: 1
        report = GitHubPoller(bot).poll_once()
        assert report.paused_until == clock.now + timedelta(seconds=1)
        assert report.error is not None and "Retry-After" in report.error
        assert trunk(bot) == SHAS[3:8]  # the commits read before the limit are kept
        assert attempts(bot) == set()
        health = bot.health.snapshot()["sources"]["github-poller"]
        assert "rate" in health["error"] and "paused until" in health["note"]
        seen = len(github.requests)
        assert GitHubPoller(bot).poll_once().skipped
        assert len(github.requests) == seen  # paused: not one request
    with poller_bot(tmp_path, clock, **settings) as bot:  # the pause survives a restart
        assert GitHubPoller(bot).poll_once().skipped
        clock.advance(seconds=2)
        resumed = GitHubPoller(bot).poll_once()
        assert resumed.error is None and not resumed.skipped
        assert {sha for sha, *_ in attempts(bot)} == set(SHAS[3:8])
        assert len(alerts(bot)) == 1


def test_primary_rate_limit_waits_for_the_reset(tmp_path: Path, github: FakeGitHub) -> None:
    clock = Clock()  # real time: the fake's X-RateLimit-Reset is wall-clock epoch
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
        github.exhaust_rate_limit(reset_in=120)
        report = GitHubPoller(bot).poll_once()
        assert report.paused_until is not None
        assert timedelta(seconds=100) < report.paused_until - clock.now < timedelta(seconds=125)
        assert trunk(bot) == []
        assert GitHubPoller(bot).poll_once().skipped


def test_low_remaining_stops_before_the_limit(tmp_path: Path, clock: Clock) -> None:
    with FakeGitHub(token="tok", rate_limit=8) as github:
        for i in range(8):
            land(github, i, "failure" if i >= 4 else "success")
        with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
            report = GitHubPoller(bot, per_page=2).poll_once()
            assert report.paused_until is not None
            assert report.error is not None and "left" in report.error
            assert github.rate_remaining > 0  # never ran into a 403


def test_server_errors_end_the_tick_and_the_next_one_catches_up(
        tmp_path: Path, github: FakeGitHub, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
        newest = next(r for r in github.runs.values() if r.head_sha == SHAS[7] and
                      r.name == "inductor")
        github.fail_next(f"{RUNS}/{newest.id}/jobs", status=502)
        failed = GitHubPoller(bot).poll_once()
        assert failed.error is not None and "502" in failed.error
        assert failed.paused_until is None  # a 5xx is retried next tick, not paused
        assert SHAS[7] not in {sha for sha, *_ in attempts(bot)}
        assert "502" in bot.health.snapshot()["sources"]["github-poller"]["error"]
        caught_up = GitHubPoller(bot).poll_once()
        assert caught_up.error is None
        assert {sha for sha, *_ in attempts(bot)} == set(SHAS[3:8])
        assert alerts(bot)[0].jobs[0].newest_failing_sha == SHAS[7]


def test_timeouts_end_the_tick_and_nothing_is_skipped(
        tmp_path: Path, github: FakeGitHub, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot:
        github.delay_next(COMMITS, seconds=3)
        failed = GitHubPoller(bot, timeout=0.3).poll_once()
        assert failed.error is not None and "timed out" in failed.error
        assert trunk(bot) == []
        recovered = GitHubPoller(bot, timeout=5).poll_once()
        assert recovered.error is None
        assert trunk(bot) == SHAS[3:8]
        assert len(alerts(bot)) == 1


def test_a_webhook_job_for_an_unknown_commit_is_placed_by_the_poller(
        tmp_path: Path, github: FakeGitHub, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **github_settings(github)) as bot, \
            serve(bot, clock) as running, running.client() as client:
        poller = GitHubPoller(bot)
        poller.poll_once()
        github.push_commit(REPO, "main", FakeCommit(SHAS[8], "change 8", date=at(8)))
        payload = {"action": "completed", "repository": {"full_name": REPO}, "workflow_job": {
            "id": 777, "run_id": 1, "run_attempt": 1, "head_sha": SHAS[8], "head_branch": "main",
            "workflow_name": "inductor", "name": JOBS[0], "status": "completed",
            "conclusion": "failure", "html_url": None, "started_at": None,
            "completed_at": at(8).isoformat()}}
        body = json.dumps(payload).encode()
        answer = client.post("/github/webhook", content=body, headers={
            "X-GitHub-Event": "workflow_job", "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sign_github(GITHUB_SECRET, body)})
        assert answer.json()["waiting_for_order"] is True
        assert poller.poll_once().commits_placed == 1
        assert trunk(bot)[-1] == SHAS[8]
        cell = bot.store.db.execute("SELECT status FROM cells WHERE sha = ? AND job_key = ?",
                                    [SHAS[8], TIMM_KEY]).fetchone()
        assert cell == ("failure",)


# --- HUD --------------------------------------------------------------------------------------

HUD_TIMM = "inductor / cuda12.8 / test (inductor_timm, 1, 1, linux.g5)"


def hud_rows(count: int, failing_from: int) -> list[tuple[str, dict[str, str]]]:
    """Rows newest first; commits at index >= failing_from fail the timm job."""
    return [(SHAS[i], {HUD_TIMM: "failure" if i >= failing_from else "success"})
            for i in reversed(range(count))]


@pytest.fixture
def hud() -> Iterator[FakeHud]:
    with FakeHud() as fake:
        fake.set_rows(REPO, "main", hud_rows(8, failing_from=4))
        yield fake


def hud_settings(hud: FakeHud) -> dict[str, Any]:
    return {"hud_url": hud.url, "hud_token": "hud-secret", "hud_per_page": 3,
            "hud_backfill_commits": 6}


def test_hud_backfills_whole_pages_with_the_bot_header(
        tmp_path: Path, hud: FakeHud, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **hud_settings(hud)) as bot:
        report = HudPoller(bot).poll_once()
        assert report.error is None
        assert report.pages == 2
        assert hud.bot_headers == ["hud-secret", "hud-secret"]
        assert [r.query["per_page"] for r in hud.requests] == ["3", "3"]
        assert trunk(bot) == SHAS[2:8]
        [alert] = alerts(bot)
        assert alert.first_red is not None and alert.first_red.sha == SHAS[4]


def test_hud_pages_until_a_known_commit_and_refreshes_known_rows(
        tmp_path: Path, hud: FakeHud, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **hud_settings(hud)) as bot:
        poller = HudPoller(bot)
        poller.poll_once()
        steady = poller.poll_once()
        assert steady.pages == 1 and steady.results_stored == 0
        for i in range(8, 12):
            hud.push_row(REPO, "main", SHAS[i], {HUD_TIMM: "failure"})
        hud.set_cell(REPO, "main", SHAS[7], HUD_TIMM, "success")  # a late rerun result
        report = poller.poll_once()
        assert report.pages == 2  # page 2 holds known commits: stop there
        assert trunk(bot) == SHAS[2:12]
        statuses = dict(bot.store.db.execute(
            "SELECT sha, status FROM cells WHERE job_key = ?",
            ["inductor / cuda12.8 / test (inductor_timm)"]).fetchall())
        assert statuses[SHAS[7]] == "flaky"  # failed, then passed on a rerun: read late
        assert statuses[SHAS[11]] == "failure"


def test_hud_failures_store_nothing_and_429_pauses(
        tmp_path: Path, hud: FakeHud, clock: Clock) -> None:
    with poller_bot(tmp_path, clock, **hud_settings(hud)) as bot:
        hud.fail_next("/api/hud/", status=503)
        failed = HudPoller(bot).poll_once()
        assert failed.error is not None and "503" in failed.error
        assert trunk(bot) == []
        hud.fail_next("/api/hud/", status=200, body={"unexpected": True})
        assert "unusable" in (HudPoller(bot).poll_once().error or "")
        hud.delay_next("/api/hud/", seconds=3)
        assert "timed out" in (HudPoller(bot, timeout=0.3).poll_once().error or "")
        assert trunk(bot) == []
        hud.fail_next("/api/hud/", status=429, headers={"Retry-After": "30"},
                      body={"error": "slow down"})
        limited = HudPoller(bot).poll_once()
        assert limited.paused_until == clock.now + timedelta(seconds=30)
        assert HudPoller(bot).poll_once().skipped
        clock.advance(seconds=31)
        assert HudPoller(bot).poll_once().error is None
        assert trunk(bot) == SHAS[2:8]


def test_hud_poller_normalises_like_replay(tmp_path: Path, hud: FakeHud, clock: Clock) -> None:
    page = httpx.get(f"{hud.url}/api/hud/{REPO}/main/1", params={"per_page": 8}).json()
    recorded = tmp_path / "hud.json"
    recorded.write_text(json.dumps(page))
    replayed = Store(tmp_path / "replay.db")
    replayed.migrate()
    replay(replayed, (Route(),), [recorded], io.StringIO())
    query = ("SELECT sha, job_id, job_key, status, conclusion, failure_lines, log_url "
             "FROM job_results ORDER BY job_id")
    expected = replayed.db.execute(query).fetchall()
    expected_order = [r[0] for r in replayed.db.execute("SELECT sha FROM commits ORDER BY "
                                                        "position")]
    replayed.close()
    with poller_bot(tmp_path / "live", clock, **{**hud_settings(hud), "hud_per_page": 8,
                                                 "hud_backfill_commits": 8}) as bot:
        HudPoller(bot).poll_once()
        assert bot.store.db.execute(query).fetchall() == expected
        assert trunk(bot) == expected_order
