"""What GitHub reruns for the bot's own retries, over the wire: exactly the jobs the bot
planned and paid for, one job request at a time (never ``rerun-failed-jobs``, which also
reruns infrastructure failures and jobs past the budget), the rest of a run's jobs asked
once the run has completed again; an "already running" answer or a lost answer delays a
job, never drops it or reruns it twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.runtime import Bot
from bot.store import retries as store
from tests.fakes.github_api import FakeGitHub
from tests.retry.test_automatic import (
    FAIL,
    GREEN,
    HF,
    HF_KEY,
    RUNNER_LOST,
    TIMM,
    TOKEN,
    auto,
    bot_for,
    feed,
    finish_reruns,
    reruns_asked,
    retry_rows,
    send,
    tick,
    trunk,
)
from tests.support.ci_world import REPO
from tests.support.server import RunningBot

OTHER = "linux-jammy-py3.10 / build"  # another job of the same workflow run
OTHER_KEY = "inductor / linux-jammy-py3.10 / build"
JOB_RERUN = f"/repos/{REPO}/actions/jobs/"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


def reran(github: FakeGitHub) -> list[str]:
    """The jobs GitHub started again, in order (whatever the bot asked for)."""
    return [github.jobs[old].name for old, _ in github.reruns]


def later(running: RunningBot, minutes: int = 3) -> None:
    """Time passes and the retry desk ticks."""
    running.clock.advance(minutes=minutes)
    running.bot.retries.advance()


def only_job_reruns(github: FakeGitHub) -> bool:
    return all(path.startswith(JOB_RERUN) for path in reruns_asked(github))


def budget_spent(bot: Bot) -> int:
    return bot.store.db.execute("SELECT count(*) FROM job_retries WHERE route = ?",
                                ["inductor"]).fetchone()[0]


def test_only_the_planned_jobs_are_rerun_not_infra_nor_past_the_budget(
        tmp_path: Path, github: FakeGitHub) -> None:
    """The reviewer's run: two failed shards of one job (planned), a runner-lost shard of
    another (infrastructure: never), and a third job whose first failure is over the
    budget of 2. GitHub reruns the two planned shards, each once, nothing else."""
    broken = {HF[0]: ("failure", FAIL), HF[1]: ("failure", FAIL),
              TIMM: ("failure", RUNNER_LOST), OTHER: ("failure", FAIL)}
    world = trunk(github, {**GREEN, OTHER: ("success", None)}, broken)
    with bot_for(tmp_path, github, world, (auto(auto_retry_budget=2),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        report = tick(bot)
        assert report.planned == [("inductor", HF_KEY, world.shas[1])]
        assert [key for _, key, _ in report.over_budget] == [OTHER_KEY]
        assert reran(github) == [HF[0]], "one job per request, one request per run"
        assert [r[4] for r in retry_rows(bot)] == ["requested", "planned"]
        later(running)
        assert reran(github) == [HF[0]], "the run is running the first rerun: the 2nd waits"
        finish_reruns(running, github, world, "success")
        later(running)
        assert reran(github) == [HF[0], HF[1]]
        finish_reruns(running, github, world, "success")
        for _ in range(3):
            running.clock.advance(minutes=3)
            tick(bot)
            later(running)
        assert reran(github) == [HF[0], HF[1]], "each planned shard once, nothing else"
        assert only_job_reruns(github)
        assert [r[4:] for r in retry_rows(bot)] == [("done", "passed")] * 2
        assert budget_spent(bot) == 2


def test_two_jobs_planned_in_one_tick_in_one_run_rerun_two_jobs(
        tmp_path: Path, github: FakeGitHub) -> None:
    """Single-shard first failures of two jobs of one run, planned in the same tick with a
    budget of 2, and a third failing job past it: GitHub reruns exactly 2 jobs."""
    broken = {HF[0]: ("failure", FAIL), HF[1]: ("success", None), TIMM: ("failure", FAIL),
              OTHER: ("failure", FAIL)}
    world = trunk(github, {**GREEN, OTHER: ("success", None)}, broken)
    with bot_for(tmp_path, github, world, (auto(auto_retry_budget=2),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        report = tick(bot)
        assert len(report.planned) == 2 and len(report.over_budget) == 1
        planned = sorted(r[0] for r in retry_rows(bot))
        assert len(reran(github)) == 1
        for _ in range(4):
            finish_reruns(running, github, world, "failure")
            running.clock.advance(minutes=3)
            tick(bot)
            later(running)
        assert sorted(reran(github)) == planned, "the two jobs paid for, each once"
        assert only_job_reruns(github)
        assert budget_spent(bot) == 2
        assert {r[4:] for r in retry_rows(bot)} == {("done", "failed")}


def test_already_running_is_asked_again_later_not_refused(tmp_path: Path,
                                                          github: FakeGitHub) -> None:
    world = trunk(github, GREEN, {**GREEN, HF[0]: ("failure", FAIL)})
    with bot_for(tmp_path, github, world, (auto(auto_retry_budget=5),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        github.fail_next(JOB_RERUN, status=403, headers={}, method="POST",
                         body={"message": "This workflow is already running"})
        assert tick(bot).planned
        assert github.reruns == [] and [r[4] for r in retry_rows(bot)] == ["planned"]
        bot.retries.advance()
        assert len(reruns_asked(github)) == 1, "not asked again before the wait is over"
        later(running)
        assert reran(github) == [HF[0]]
        assert [r[4] for r in retry_rows(bot)] == ["requested"]
        assert budget_spent(bot) == 1, "waiting is not a second charge on the budget"
        assert store.automatic_left(bot.store.db, "inductor", 5, running.clock()) == 4


def test_a_lost_answer_for_a_later_shard_is_looked_for_and_asked_again(
        tmp_path: Path, github: FakeGitHub) -> None:
    """The run's attempt moved on with the first shard's rerun: a lost answer for the
    second is judged against the attempt seen when it was asked, so a request that did
    not start is asked again instead of waiting for a result that never comes."""
    world = trunk(github, GREEN, {**GREEN, HF[0]: ("failure", FAIL), HF[1]: ("failure", FAIL)})
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        tick(bot)
        assert reran(github) == [HF[0]]
        finish_reruns(running, github, world, "success")
        github.fail_next(JOB_RERUN, status=502, method="POST")  # nothing started
        later(running)
        assert [r[4] for r in retry_rows(bot)] == ["done", "uncertain"]
        later(running, minutes=1)
        assert reran(github) == [HF[0], HF[1]]
        assert [r[4] for r in retry_rows(bot)] == ["done", "requested"]
        finish_reruns(running, github, world, "success")
        later(running)
        assert [r[4:] for r in retry_rows(bot)] == [("done", "passed")] * 2
        assert reran(github) == [HF[0], HF[1]]


def test_a_job_rerun_by_someone_meanwhile_is_not_asked_for_again(
        tmp_path: Path, github: FakeGitHub) -> None:
    """While the second shard waits for the run, a person reruns it on GitHub: the bot does
    not ask for it again; that rerun's result settles the bot's retry."""
    world = trunk(github, GREEN, {**GREEN, HF[0]: ("failure", FAIL), HF[1]: ("failure", FAIL)})
    second = next(j.id for j in github.jobs.values() if j.name == HF[1] and j.conclusion
                  == "failure")
    with bot_for(tmp_path, github, world, (auto(),)) as running:
        bot = running.bot
        feed(running, world, 0, 1)
        tick(bot)
        finish_reruns(running, github, world, "success")
        with httpx.Client(base_url=github.url,
                          headers={"Authorization": f"Bearer {TOKEN}"}) as person:
            assert person.post(f"{JOB_RERUN}{second}/rerun", json={}).status_code == 201
        by_person = github.reruns[-1][1]
        send(running, "workflow_job", world.job(by_person))  # queued
        later(running)
        assert [r[4] for r in retry_rows(bot)] == ["done", "requested"]
        finish_reruns(running, github, world, "success")
        later(running)
        assert reran(github) == [HF[0], HF[1]], "the person's rerun only; none of the bot's"
        assert len(reruns_asked(github)) == 2  # the bot's one, the person's one
        assert [r[4:] for r in retry_rows(bot)] == [("done", "passed")] * 2
