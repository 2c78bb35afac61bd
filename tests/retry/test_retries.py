"""The retry desk against the fake GitHub: once per job, who asked, lost answers looked for
before asking again, refusals and rate limits, results settling the retry."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.ingest.github_payloads import parse_push, parse_workflow_job
from bot.runtime import Bot
from bot.slack.triage import Request
from bot.store import retries as store
from tests.fakes.github_api import FakeGitHub
from tests.support.ci_world import REPO, World, log_of, shard
from tests.support.server import Clock, settings_for, started_bot

TOKEN = "ghp_retry_token"
HF = [shard("inductor_huggingface", i, 2) for i in (1, 2)]
FAIL = log_of("RuntimeError: boom")


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


def incident(tmp_path: Path, github: FakeGitHub, token: str | None = TOKEN) -> tuple[Bot, World]:
    world = World(github)
    world.commit("green")
    world.run(0, {HF[0]: ("success", None), HF[1]: ("success", None)})
    for i in (1, 2, 3):
        world.commit(f"change {i}")
        world.run(i, {HF[0]: ("failure", FAIL), HF[1]: ("failure", FAIL)})
    bot = started_bot(settings_for(tmp_path, github_token=token, github_api_url=github.url),
                      Clock(world.time(3) + timedelta(hours=2)))
    push = parse_push(world.push(0, 3))
    assert push.branch is not None
    bot.ingestor.commits(push.repo, push.branch, push.commits, after=push.before)
    for job in sorted(github.jobs):
        bot.ingestor.result(parse_workflow_job(world.job(job)))
    return bot, world


@pytest.fixture
def setup(tmp_path: Path, github: FakeGitHub) -> Iterator[tuple[Bot, World]]:
    bot, world = incident(tmp_path, github)
    try:
        yield bot, world
    finally:
        bot.stop()


def rows(bot: Bot) -> list[store.Retry]:
    return store.of_alert(bot.store.db, 1)


def finish_reruns(bot: Bot, github: FakeGitHub, world: World, conclusion: str) -> None:
    for _, new in github.reruns:
        github.finish_job(new, conclusion, log=FAIL if conclusion == "failure" else None)
        bot.ingestor.result(parse_workflow_job(world.job(new)))


def test_each_job_is_rerun_once_with_who_asked(setup: tuple[Bot, World],
                                               github: FakeGitHub) -> None:
    bot, world = setup
    answer = bot.retries.request(1, "U1")
    assert answer.ok and "Retrying 2 failed jobs of A1" in answer.text
    again = bot.retries.request(1, "U2")
    assert (again.ok, again.code) == (False, "already_retried")
    assert "asked by <@U1>" in again.text
    assert [(r.requested_by, r.state) for r in rows(bot)] == [("U1", "planned")] * 2
    bot.retries.advance()
    assert [r.state for r in rows(bot)] == ["requested"] * 2
    assert len(github.requests_to("/repos/", method="POST")) == 1
    bot.retries.advance()
    assert len(github.requests_to("/repos/", method="POST")) == 1, "never asked twice"
    finish_reruns(bot, github, world, "success")
    bot.retries.advance()
    assert [(r.state, r.outcome) for r in rows(bot)] == [("done", "passed")] * 2
    kinds = [e[0] for e in bot.store.db.execute(
        "SELECT kind FROM alert_events WHERE alert_id = 1 ORDER BY id")]
    assert kinds.count("retry_requested") == 1 and kinds.count("retry_result") == 1
    state = bot.store.db.execute("SELECT state FROM alerts WHERE id = 1").fetchone()[0]
    assert state == "resolved", "passing reruns at the newest failing commit end the streak"


def test_a_lost_answer_is_looked_for_before_asking_again(setup: tuple[Bot, World],
                                                         github: FakeGitHub) -> None:
    bot, _ = setup
    github.rerun_fail_status, github.rerun_fail_times = 502, 1  # started, yet answered 502
    bot.retries.request(1, "U1")
    bot.retries.advance()
    assert {r.state for r in rows(bot)} == {"uncertain"}
    bot.clock.advance(minutes=1)  # type: ignore[attr-defined]
    bot.retries.advance()
    assert {r.state for r in rows(bot)} == {"requested"}
    assert len(github.requests_to("/repos/", method="POST")) == 1, "it had started: no 2nd POST"
    assert len(github.requests_to("/repos/pytorch/pytorch/actions/runs/", method="GET")) >= 1


def test_a_lost_answer_that_did_not_start_is_asked_again(setup: tuple[Bot, World],
                                                         github: FakeGitHub) -> None:
    bot, _ = setup
    github.fail_next("/repos/pytorch/pytorch/actions/runs/", status=502, method="POST")
    bot.retries.request(1, "U1")
    bot.retries.advance()
    assert {r.state for r in rows(bot)} == {"uncertain"}
    bot.clock.advance(minutes=1)  # type: ignore[attr-defined]
    bot.retries.advance()  # looks: attempt 1 still; planned again and asked in the same tick
    assert {r.state for r in rows(bot)} == {"requested"}
    assert len(github.reruns) == 2


def test_refusals_and_rate_limits(setup: tuple[Bot, World], github: FakeGitHub) -> None:
    bot, _ = setup
    bot.retries.request(1, "U1")
    github.fail_next("/repos/pytorch/pytorch/actions/runs/", method="POST")  # rate limited
    bot.retries.advance()
    assert {r.state for r in rows(bot)} == {"planned"}
    assert all(r.next_try_at is not None and r.next_try_at > bot.clock() for r in rows(bot))
    bot.retries.advance()
    assert len(github.requests_to("/repos/", method="POST")) == 1, "waits for the pause"
    github.fail_next("/repos/pytorch/pytorch/actions/runs/", status=403, method="POST",
                     headers={}, body={"message": "Resource not accessible by integration"})
    bot.clock.advance(minutes=5)  # type: ignore[attr-defined]
    bot.retries.advance()
    assert {(r.state, r.detail) for r in rows(bot)} == {
        ("refused", "GitHub refused: 403 Resource not accessible by integration")}


def test_retry_needs_a_token_an_open_alert_and_failed_jobs(tmp_path: Path,
                                                           github: FakeGitHub) -> None:
    bot, _ = incident(tmp_path, github, token=None)
    try:
        assert bot.retries.request(1, "U1").code == "not_configured"
    finally:
        bot.stop()


def test_a_resolved_or_unknown_alert_is_not_retried(setup: tuple[Bot, World]) -> None:
    bot, _ = setup
    assert bot.retries.request(99, "U1").code == "not_found"
    bot.triage.perform(Request(verb="resolve", alert_id=1, actor="U1"))
    assert bot.retries.request(1, "U1").code == "resolved"


def test_results_that_fail_again_settle_as_failed(setup: tuple[Bot, World],
                                                  github: FakeGitHub) -> None:
    bot, world = setup
    bot.retries.request(1, "U1")
    bot.retries.advance()
    finish_reruns(bot, github, world, "failure")
    bot.retries.advance()
    assert [(r.state, r.outcome) for r in rows(bot)] == [("done", "failed")] * 2
    assert {r.result_job_id for r in rows(bot)} == {new for _, new in github.reruns}
    assert rows(bot)[0].repo == REPO
