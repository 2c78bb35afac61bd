"""Automatic retries of a job's first failure, over the wire: signed webhooks into the real
server, logs, run states and reruns from the fake GitHub. Once per job and commit (ticks,
redeliveries, a second process), within the route's budget, never without the setting or
a token, never for infrastructure; a passing rerun keeps the streak from alerting."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.auto_retry import AUTOMATIC
from bot.domain.route import Route
from bot.retry.automatic import AutoRetryReport
from bot.runtime import Bot
from bot.slack.present import build_alert_view, event_view
from bot.slack.render import render_event, render_parent
from bot.store import alerts as alert_store
from bot.store import retries as store
from tests.fakes.github_api import FakeGitHub
from tests.support.ci_world import REPO, World, log_of, shard
from tests.support.server import (
    GITHUB_SECRET,
    Clock,
    RunningBot,
    running_bot,
    settings_for,
    started_bot,
)
from tests.support.signing import github_request

TOKEN = "ghp_auto_retry_token"
HF = [shard("inductor_huggingface", i, 2) for i in (1, 2)]
TIMM = shard("inductor_timm", 1, 1)
HF_KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"
FAIL = log_of("Traceback (most recent call last):", "RuntimeError: boom",
              "##[error]Process completed with exit code 1.")
RUNNER_LOST = log_of("##[error]The runner has received a shutdown signal. This can happen "
                     "when the runner service is stopped.")
GREEN = {HF[0]: ("success", None), HF[1]: ("success", None), TIMM: ("success", None)}
HF_BROKEN = {HF[0]: ("failure", FAIL), HF[1]: ("success", None), TIMM: ("success", None)}
POSTS = "/repos/pytorch/pytorch/actions/"
_deliveries = itertools.count(1)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


def auto(**fields: Any) -> Route:
    return Route(auto_retry=True, **fields)


def trunk(github: FakeGitHub, *runs: dict[str, tuple[str, str | None]]) -> World:
    world = World(github)
    for i, jobs in enumerate(runs):
        world.commit(f"change {i}")
        world.run(i, jobs)
    return world


@contextmanager
def bot_for(tmp_path: Path, github: FakeGitHub, world: World, routes: tuple[Route, ...],
            token: str | None = TOKEN) -> Iterator[RunningBot]:
    clock = Clock(world.time(len(world.shas) - 1) + timedelta(hours=2))
    with running_bot(tmp_path, clock, github_token=token, github_api_url=github.url,
                     routes=routes) as running:
        yield running


def send(running: RunningBot, event: str, payload: dict[str, Any],
         delivery: str | None = None) -> None:
    body, headers = github_request(event, payload, delivery or f"d-{next(_deliveries)}",
                                   GITHUB_SECRET)
    with running.client() as http:
        response = http.post("/github/webhook", content=body, headers=headers)
    assert response.status_code == 200, response.text


def feed(running: RunningBot, world: World, first: int, last: int) -> None:
    """The push of commits ``first..last`` and every job of their runs, as webhooks."""
    send(running, "push", world.push(first, last))
    runs = {world.runs[i] for i in range(first, last + 1)}
    for job_id in sorted(j.id for j in world.github.jobs.values() if j.run_id in runs):
        send(running, "workflow_job", world.job(job_id))


def tick(bot: Bot) -> AutoRetryReport:
    """The evidence reader until its queue is empty, then one automatic-retry tick."""
    for _ in range(10):
        report = bot.scheduler.run_now("evidence")
        if not report.logs_read and not report.files_read:  # type: ignore[attr-defined]
            break
    result = bot.scheduler.run_now("auto_retries")
    assert isinstance(result, AutoRetryReport)
    return result


def reruns_asked(github: FakeGitHub) -> list[str]:
    return [r.path for r in github.requests_to(POSTS, method="POST")]


def _alert_ids(bot: Bot) -> list[int]:
    return [row[0] for row in bot.store.db.execute("SELECT id FROM alerts ORDER BY id")]


def retry_rows(bot: Bot) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in bot.store.db.execute(
        "SELECT job_name, requested_by, route, alert_id, state, outcome FROM job_retries "
        "ORDER BY id")]


def finish_reruns(running: RunningBot, github: FakeGitHub, world: World,
                  conclusion: str) -> None:
    for _, new in github.reruns:
        if github.jobs[new].status != "completed":
            github.finish_job(new, conclusion, log=FAIL if conclusion == "failure" else None)
            send(running, "workflow_job", world.job(new))


# --- once --------------------------------------------------------------------------------------


def test_a_first_failure_is_rerun_once(tmp_path: Path, github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    failed = next(j.id for j in github.jobs.values() if j.conclusion == "failure")
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        report = tick(bot)
        assert report.planned == [("inductor", HF_KEY, world.shas[1])]
        assert reruns_asked(github) == [f"/repos/{REPO}/actions/jobs/{failed}/rerun"]
        assert retry_rows(bot) == [(HF[0], AUTOMATIC, "inductor", None, "requested", None)]
        # more ticks, a redelivery (same delivery id) and the same job delivered anew
        tick(bot)
        send(running, "workflow_job", world.job(failed), delivery="d-again")
        send(running, "workflow_job", world.job(failed), delivery="d-again")
        send(running, "workflow_job", world.job(failed))
        tick(bot)
        assert len(reruns_asked(github)) == 1, "never asked twice for one job at one commit"
        assert len(retry_rows(bot)) == 1


def test_two_processes_ticking_together_rerun_once(tmp_path: Path,
                                                   github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        feed(running, world, 0, 1)
        for _ in range(10):
            if not running.bot.scheduler.run_now("evidence").logs_read:  # type: ignore[attr-defined]
                break
        other = started_bot(settings_for(tmp_path, github_token=TOKEN, github_api_url=github.url,
                                         routes=(auto(),)), running.clock)
        try:
            start = threading.Barrier(2)
            reports: list[AutoRetryReport] = []

            def run(bot: Bot) -> None:
                start.wait(timeout=10)
                reports.append(bot.auto_retries.run_once())

            threads = [threading.Thread(target=run, args=(b,)) for b in (running.bot, other)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=30)
            assert sorted(len(r.planned) for r in reports) == [0, 1]
        finally:
            other.stop()
        assert len(reruns_asked(github)) == 1
        assert len(retry_rows(running.bot)) == 1


def test_a_run_still_running_is_waited_for(tmp_path: Path, github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    run = github.runs[world.runs[1]]
    build = github.add_job(run, "linux-jammy / build", status="in_progress", conclusion=None)
    run.status, run.conclusion = "in_progress", None
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        report = tick(bot)
        assert report.waiting == 1 and not report.planned and reruns_asked(github) == []
        looks = len(github.requests_to(f"/repos/{REPO}/actions/runs/{run.id}", method="GET"))
        assert looks == 1
        tick(bot)
        assert len(github.requests_to(f"/repos/{REPO}/actions/runs/{run.id}",
                                      method="GET")) == looks, "a running run is not polled hot"
        github.finish_job(build.id, "success")
        running.clock.advance(minutes=3)
        assert tick(bot).planned and len(reruns_asked(github)) == 1


def test_a_rate_limit_pauses_the_tick(tmp_path: Path, github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        github.fail_next(f"/repos/{REPO}/actions/runs/", status=429, method="GET",
                         headers={"Retry-After": "120"})
        report = tick(bot)
        assert report.paused_until == running.clock() + timedelta(seconds=120)
        assert "paused until" in (bot.health.sources["auto_retries"].error or "")
        asked = len(github.requests)
        assert tick(bot).planned == [] and len(github.requests) == asked, "waits it out"
        running.clock.advance(minutes=3)
        assert tick(bot).planned and len(reruns_asked(github)) == 1


# --- never ---------------------------------------------------------------------------------


def test_the_budget_caps_reruns_per_route(tmp_path: Path, github: FakeGitHub) -> None:
    both = {**HF_BROKEN, TIMM: ("failure", FAIL)}
    world = trunk(github, GREEN, both)
    with bot_for(tmp_path, github, world, (auto(auto_retry_budget=1),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        report = tick(bot)
        timm_key = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"
        assert report.planned == [("inductor", HF_KEY, world.shas[1])]
        assert report.over_budget == [("inductor", timm_key, world.shas[1])]
        note = bot.health.sources["auto_retries"].note or ""
        assert "budget used up for inductor" in note
        assert len(reruns_asked(github)) == 1
        assert tick(bot).over_budget and len(reruns_asked(github)) == 1, "still over budget"
        assert [r[0] for r in retry_rows(bot)] == [HF[0]]


def test_off_by_default(tmp_path: Path, github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    with bot_for(tmp_path, github, world, (Route(),)) as running:
        feed(running, world, 0, 1)
        assert "auto_retries" not in running.bot.scheduler.jobs
        assert running.bot.auto_retries.run_once().planned == []
        assert reruns_asked(github) == [] and retry_rows(running.bot) == []


def test_never_without_a_token(tmp_path: Path, github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    with bot_for(tmp_path, github, world, (auto(),), token=None) as running:
        feed(running, world, 0, 1)
        assert "auto_retries" not in running.bot.scheduler.jobs
        assert running.bot.auto_retries.run_once().planned == []
        assert github.requests == [], "nothing asked of GitHub at all"
        assert retry_rows(running.bot) == []


@pytest.mark.parametrize("infra_failures_alert", [False, True])
def test_infrastructure_failures_are_not_rerun(tmp_path: Path, github: FakeGitHub,
                                              infra_failures_alert: bool) -> None:
    world = trunk(github, GREEN, {**HF_BROKEN, HF[0]: ("failure", RUNNER_LOST)})
    routes = (auto(infra_failures_alert=infra_failures_alert),)
    with bot_for(tmp_path, github, world, routes) as running:
        feed(running, world, 0, 1)
        report = tick(running.bot)
        assert report.planned == [] and reruns_asked(github) == []


def test_a_commit_rerun_by_someone_is_left_alone(tmp_path: Path, github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN)
    run = github.runs[world.runs[1]]
    github.add_job(run, HF[0], conclusion="failure", attempt=2, log=FAIL)  # rerun on GitHub
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        feed(running, world, 0, 1)
        assert tick(running.bot).planned == [] and reruns_asked(github) == []


# --- what it is for ----------------------------------------------------------------------------


@pytest.mark.parametrize("auto_retry", [True, False])
def test_a_passing_rerun_keeps_the_streak_from_alerting(tmp_path: Path, github: FakeGitHub,
                                                        auto_retry: bool) -> None:
    world = trunk(github, GREEN, HF_BROKEN, HF_BROKEN, HF_BROKEN)
    with bot_for(tmp_path, github, world, (Route(auto_retry=auto_retry),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        if auto_retry:
            tick(bot)
        finish_reruns(running, github, world, "success")
        bot.retries.advance()
        feed(running, world, 2, 3)
        alerts = _alert_ids(bot)
        cell = bot.store.db.execute("SELECT status FROM cells WHERE sha = ? AND job_key = ?",
                                    [world.shas[1], HF_KEY]).fetchone()[0]
        if auto_retry:
            assert cell == "flaky", "the rerun passed: a flaky pass, as HUD shows it"
            assert alerts == [], "two failures in a row after it: below the threshold"
            assert retry_rows(bot)[0][4:] == ("done", "passed")
        else:
            assert cell == "failure" and alerts == [1], "without it the streak reaches 3"


def test_an_alert_shows_the_automatic_retry_like_a_manual_one(tmp_path: Path,
                                                              github: FakeGitHub) -> None:
    world = trunk(github, GREEN, HF_BROKEN, HF_BROKEN, HF_BROKEN)
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        tick(bot)
        finish_reruns(running, github, world, "failure")  # a real breakage fails again
        bot.retries.advance()
        feed(running, world, 2, 3)
        assert _alert_ids(bot) == [1]
        shown = store.of_alert(bot.store.db, 1)
        assert [(r.requested_by, r.sha, r.outcome) for r in shown] == [
            (AUTOMATIC, world.shas[1], "failed")]
        view = build_alert_view(bot.store.db, 1, bot.routes)
        assert view is not None
        text = json.dumps(render_parent(view))
        assert "Retried* (asked by the bot, automatically)" in text
        assert "inductor_huggingface 1/2 :x: failed again" in text
        # the Retry button at the newest failing commit is still a person's to press
        answer = bot.retries.request(1, "U1")
        assert answer.ok, answer.text


def test_an_open_alert_of_the_job_hears_of_the_retry_in_its_thread(
        tmp_path: Path, github: FakeGitHub) -> None:
    """A stricter route already alerts on the job while the retrying route's streak is still
    short: the alert's thread says what the bot did, and what the rerun said (which took
    the job out of the stricter alert)."""
    world = trunk(github, GREEN, HF_BROKEN, HF_BROKEN)
    routes = (Route(name="strict", threshold=2), auto(name="patient"))
    with bot_for(tmp_path, github, world, routes) as running:
        bot = running.bot
        feed(running, world, 0, 2)
        assert _alert_ids(bot) == [1]
        assert tick(bot).planned == [("patient", HF_KEY, world.shas[1])]
        finish_reruns(running, github, world, "success")
        bot.retries.advance()
        events = alert_store.events(bot.store.db, 1)
        view = build_alert_view(bot.store.db, 1, bot.routes)
        assert view is not None
        said = [render_event(event_view(e), view) for e in events
                if e.kind in ("retry_requested", "retry_result")]
        assert said == [
            f":repeat: The bot retried 1 failed job automatically (a first failure) at "
            f"<https://github.com/{REPO}/commit/{world.shas[1]}|{world.shas[1][:7]}>: "
            "inductor_huggingface 1/2",
            ":repeat: Retry results: inductor_huggingface 1/2 :white_check_mark: passed"]
        assert [e.kind for e in events][-2:] == ["resolved", "retry_result"]
