"""The evidence reader: failed jobs' logs read once in the background, classified, and their
effect on streaks; suspects' files from pushes and the commits API. Fake GitHub over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.ingest.github_payloads import parse_push, parse_workflow_job
from bot.runtime import Bot
from bot.store import evidence as store
from tests.fakes.github_api import FakeGitHub
from tests.support.ci_world import REPO, World, failing_test_log, log_of, shard
from tests.support.server import Clock, settings_for, started_bot

TOKEN = "ghp_reader_token"
HF = [shard("inductor_huggingface", i, 2) for i in (1, 2)]
TRITON = "torch/_inductor/codegen/triton.py"
ERROR = "RuntimeError: bad tiling for node buf3"
TEST = "inductor/test_torchinductor.py::GPUTests::test_conv2d_cuda"
NO_SPACE = log_of("ERROR: Could not install packages due to an OSError: [Errno 28] "
                  "No space left on device", "##[error]Process completed with exit code 1.")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def bot(tmp_path: Path, github: FakeGitHub) -> Iterator[Bot]:
    clock = Clock(World(github).time(0) + timedelta(hours=2))
    running = started_bot(settings_for(tmp_path, github_token=TOKEN,
                                       github_api_url=github.url), clock)
    try:
        yield running
    finally:
        running.stop()


def push(bot: Bot, world: World, first: int, last: int | None = None) -> None:
    event = parse_push(world.push(first, last))
    assert event.branch is not None
    bot.ingestor.commits(event.repo, event.branch, event.commits, after=event.before)
    bot.ingestor.changed_files(event.repo, [(c.sha, c.files, c.message) for c in event.changes],
                               "push")


def deliver(bot: Bot, world: World, *job_ids: int) -> set[int]:
    alerts: set[int] = set()
    for job_id in job_ids:
        alerts |= bot.ingestor.result(parse_workflow_job(world.job(job_id))).alerts
    return alerts


def evidence(bot: Bot, job_id: int) -> store.StoredEvidence:
    return store.of_jobs(bot.store.db, REPO, [job_id])[job_id]


def open_alerts(bot: Bot) -> list[dict[str, Any]]:
    return list(bot.store.db.query("SELECT * FROM alerts WHERE state != 'resolved'"))


def breaking_world(github: FakeGitHub, logs: list[str | None]) -> tuple[World, list[int]]:
    """A green commit, then one commit per log whose second shard fails with that log."""
    world = World(github)
    world.commit("green", ("README.md",))
    world.run(0, {HF[0]: ("success", None), HF[1]: ("success", None)})
    failed: list[int] = []
    for i, log in enumerate(logs, start=1):
        world.commit(f"change {i}", (f"torch/_inductor/x{i}.py",))
        ids = world.run(i, {HF[0]: ("success", None), HF[1]: ("failure", log)})
        failed.append(ids[HF[1]])
    return world, failed


def test_a_failed_job_is_read_once_into_key_lines_class_and_signature(
        bot: Bot, github: FakeGitHub) -> None:
    world, [job] = breaking_world(github, [failing_test_log(TEST, ERROR, TRITON)])
    push(bot, world, 0, 1)
    deliver(bot, world, *world_jobs(github, world))
    assert evidence(bot, job).state == store.WANTED
    report = bot.evidence.run_once()
    assert report.logs_read == 1
    got = evidence(bot, job)
    assert got.state == store.DONE and got.source == store.LOG
    assert got.found.headline is not None and got.found.headline.test == TEST
    assert got.classification is not None and got.classification.kind.value == "test"
    assert got.signature == ERROR
    assert bot.evidence.run_once().logs_read == 0, "each log is read once"
    assert len(github.requests_to("/_logs/")) == 1
    assert all("authorization" not in r.headers for r in github.requests_to("/_logs/"))
    # a redelivery of the same job queues nothing again
    deliver(bot, world, job)
    assert store.logs_due(bot.store.db, bot.clock() + timedelta(days=1), 10) == []


def world_jobs(github: FakeGitHub, world: World) -> list[int]:
    return sorted(j.id for j in github.jobs.values())


def test_infra_failures_make_no_streak_and_test_failures_do(bot: Bot,
                                                           github: FakeGitHub) -> None:
    world, jobs = breaking_world(github, [NO_SPACE] * 3)
    push(bot, world, 0, 3)
    for index in range(4):  # results arrive commit by commit, logs read between them
        deliver(bot, world, *[j.id for j in github.jobs.values()
                              if github.runs[j.run_id].head_sha == world.shas[index]])
        bot.evidence.run_once()
    assert [evidence(bot, j).classification.kind.value for j in jobs] == ["infra"] * 3  # type: ignore[union-attr]
    assert open_alerts(bot) == [], "three infra failures in a row are no regression"
    statuses = [row[0] for row in bot.store.db.execute(
        "SELECT status FROM cells WHERE job_key LIKE '%huggingface%' ORDER BY position")]
    assert statuses == ["success"] * 4, "the passing shard alone speaks for each commit"


def test_infra_failures_alert_when_the_route_says_so(tmp_path: Path, github: FakeGitHub) -> None:
    from dataclasses import replace

    from bot.domain.route import Route

    world, _ = breaking_world(github, [NO_SPACE] * 3)
    clock = Clock(world.time(0) + timedelta(hours=2))
    settings = settings_for(tmp_path, github_token=TOKEN, github_api_url=github.url,
                            routes=(replace(Route(), infra_failures_alert=True),))
    bot = started_bot(settings, clock)
    try:
        push(bot, world, 0, 3)
        deliver(bot, world, *world_jobs(github, world))
        bot.evidence.run_once()
        assert len(open_alerts(bot)) == 1
    finally:
        bot.stop()


def test_an_alert_opened_before_the_logs_were_read_shows_them_once_read(
        bot: Bot, github: FakeGitHub) -> None:
    logs = [failing_test_log(TEST, ERROR, TRITON)] * 3
    world, jobs = breaking_world(github, logs)
    push(bot, world, 0, 3)
    [alert] = deliver(bot, world, *world_jobs(github, world))
    version = bot.store.db.execute("SELECT version FROM alerts WHERE id = ?",
                                   [alert]).fetchone()[0]
    report = bot.evidence.run_once()
    assert report.logs_read == 3 and alert in report.alerts
    assert bot.store.db.execute("SELECT version FROM alerts WHERE id = ?",
                                [alert]).fetchone()[0] > version


def test_expired_logs_rate_limits_and_outages(bot: Bot, github: FakeGitHub) -> None:
    world, jobs = breaking_world(github, ["x\n"] * 3)
    github.expired_logs.add(jobs[0])
    push(bot, world, 0, 3)
    deliver(bot, world, *world_jobs(github, world))
    github.fail_next(f"/repos/{REPO}/actions/jobs/{jobs[1]}/logs", status=502)
    github.fail_next(f"/repos/{REPO}/actions/jobs/{jobs[2]}/logs")  # a secondary rate limit
    report = bot.evidence.run_once()
    assert (report.logs_gone, report.logs_failed, report.logs_read) == (1, 1, 0)
    assert report.paused_until is not None
    assert evidence(bot, jobs[0]).state == store.GONE
    assert "502" in (evidence(bot, jobs[1]).last_error or "")
    assert bot.evidence.run_once().logs_read == 0, "nothing is asked before the pause ends"
    assert bot.health.sources["evidence"].error is not None
    bot.clock.advance(minutes=10)  # type: ignore[attr-defined]
    again = bot.evidence.run_once()
    assert again.logs_read == 2
    assert {evidence(bot, j).state for j in jobs[1:]} == {store.DONE}


def test_hud_lines_are_classified_at_ingest_without_reading_a_log(bot: Bot) -> None:
    from bot.domain.model import JobResult

    result = JobResult(repo=REPO, sha="a" * 40, workflow="inductor", job_name=HF[0],
                       job_id=77, status="completed", conclusion="failure", source="hud",
                       failure_lines=("##[error]The runner has received a shutdown signal.",))
    bot.ingestor.result(result)
    got = evidence(bot, 77)
    assert got.source == store.REPORTED and got.state == store.DONE
    assert got.classification is not None and got.classification.rule == "runner lost"
    assert store.logs_due(bot.store.db, bot.clock() + timedelta(days=1), 10) == []


def test_suspects_files_come_from_pushes_and_else_from_the_commits_api(
        bot: Bot, github: FakeGitHub) -> None:
    from bot.domain.model import Commit

    world = World(github)
    world.commit("green", ("README.md",))
    world.run(0, {HF[0]: ("success", None), HF[1]: ("success", None)})
    for i in range(1, 6):  # 1 and 2 have no results: with 3 they are the suspects
        world.commit(f"change {i}", (f"torch/_inductor/x{i}.py",))
        if i >= 3:
            world.run(i, {HF[0]: ("success", None), HF[1]: ("failure", "x\n")})
    push(bot, world, 0, 1)  # 2..5 are learnt without a push (a HUD page, the poller)
    bot.ingestor.commits(REPO, "main", [Commit(world.shas[i], world.titles[i])
                                        for i in range(2, 6)], after=world.shas[1])
    deliver(bot, world, *world_jobs(github, world))
    [alert] = open_alerts(bot)
    report = bot.evidence.run_once()
    assert report.files_read == 2 and alert["id"] in report.alerts
    files = store.files_of(bot.store.db, REPO, world.shas)
    assert [files[world.shas[i]].files for i in (1, 2, 3)] == [(f"torch/_inductor/x{i}.py",)
                                                               for i in (1, 2, 3)]
    asked = sorted(r.path.rsplit("/", 1)[-1] for r in github.requests_to(f"/repos/{REPO}/commits/"))
    assert asked == sorted(world.shas[2:4]), "pushed commits are known; only suspects are asked"
    assert bot.evidence.run_once().files_read == 0


def test_a_bystanders_infra_log_read_last_still_changes_the_alert(
        bot: Bot, github: FakeGitHub) -> None:
    """Another job's runner-lost failure at the newest failing commit is shown in the alert
    (not as a member): reading its log after the members' logs must redraw the alert."""
    logs = [failing_test_log(TEST, ERROR, TRITON)] * 3
    world, _ = breaking_world(github, logs)
    timm = shard("inductor_timm", 1, 1)
    [bystander] = world.run(3, {timm: ("failure", NO_SPACE)}).values()
    push(bot, world, 0, 3)
    [alert] = deliver(bot, world, *[j for j in world_jobs(github, world) if j != bystander])
    assert bot.evidence.run_once().logs_read == 3  # the members' logs first
    version = bot.store.db.execute("SELECT version FROM alerts WHERE id = ?",
                                   [alert]).fetchone()[0]
    deliver(bot, world, bystander)
    report = bot.evidence.run_once()
    assert report.logs_read == 1 and alert in report.alerts
    assert bot.store.db.execute("SELECT version FROM alerts WHERE id = ?",
                                [alert]).fetchone()[0] > version
    members = [row["job_key"] for row in bot.store.db.query(
        "SELECT job_key FROM alert_jobs WHERE alert_id = ?", [alert])]
    assert members and not any("inductor_timm" in key for key in members), "not a member"
