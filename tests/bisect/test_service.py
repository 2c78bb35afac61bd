"""Bisects of real alerts, tick by tick, against the fake GitHub (and a local checkout).

Each test opens a real alert by ingesting a broken trunk through ``Bot.ingestor``,
starts a bisect the way Slack does, and drives ``Bisects.advance`` with a fake
clock while a small "CI" finishes the dispatched runs: the job fails at every
commit from the planted culprit on.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.bisect.config import BisectConfigError, bisect_config
from bot.bisect.culprit import author_slack_id, revert_hint
from bot.bisect.github import GitHubDispatcher
from bot.config import ConfigError, Settings
from bot.domain.bisect_planner import round_bound
from bot.domain.failure_classes import classify
from bot.domain.failure_lines import from_reported
from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.domain.signatures import signature
from bot.ingest.hud import parse_hud_page
from bot.runtime import Bot
from bot.slack.client import SlackError
from bot.slack.people import user_id_by_email
from bot.store import alerts as alert_store
from bot.store import bisects as bisect_store
from bot.store import evidence as evidence_store
from bot.store.db import Store
from bot.store.details import alert_detail
from tests.fakes.github_api import FakeGitHub
from tests.support.clock import FakeClock
from tests.support.trunk import REPO, Trunk, sharded
from tests.support.waiting import wait_until

TOKEN = "ghs-bisect"
HF = sharded("inductor", "inductor_huggingface", 2)
TIMM = sharded("inductor", "inductor_timm", 1)
KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"
TIMM_KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"
N, LAST_GREEN, FIRST_RED, CULPRIT = 40, 9, 30, 23  # suspects 10..30: 21 of them
SUSPECTS = FIRST_RED - LAST_GREEN
DISPATCH_PATH = f"/repos/{REPO}/actions/workflows/inductor.yml/dispatches"
GITHUB_BISECT: dict[str, Any] = {
    "backend": "github", "workflow": "inductor.yml", "ref": "trunk/{sha}",
    "inputs": {"jobs-to-include": "{job}"}, "k": 3, "authors": {"dev2": "U0CULPRIT"},
}


def broken_trunk(timm_culprit: int | None = None) -> Trunk:
    """The huggingface job's second shard fails from FIRST_RED on, nothing known in between.

    With ``timm_culprit`` the timm job has a result on every commit and breaks there.
    """
    trunk = Trunk.linear(N, HF + TIMM)
    trunk._next_id = 10_000_000  # CI's job ids and the fake GitHub's share one id space
    for i in range(N):
        for name in HF:
            if i <= LAST_GREEN:
                trunk.set(i, name, "success")
            elif i >= FIRST_RED:
                trunk.set(i, name, "failure" if name == HF[1] else "success")
        if timm_culprit is not None:
            trunk.set(i, TIMM[0], "failure" if i >= timm_culprit else "success")
    return trunk


@dataclass
class FakeCI:
    """Finishes every dispatched run: the job fails at and after the culprit."""

    github: FakeGitHub
    trunk: Trunk
    culprit: int = CULPRIT
    finished: set[int] = field(default_factory=set)

    def finish_runs(self) -> None:
        for dispatch in list(self.github.dispatches):
            if dispatch.run_id in self.finished:
                continue
            run = self.github.runs[dispatch.run_id]
            broken = self.trunk.shas.index(run.head_sha) >= self.culprit
            for name in HF:
                failing = broken and name == HF[1]
                self.github.add_job(run, name.partition(" / ")[2],
                                    conclusion="failure" if failing else "success")
            run.status, run.conclusion = "completed", "failure" if broken else "success"
            self.finished.add(dispatch.run_id)


@dataclass
class World:
    tmp_path: Path
    github: FakeGitHub
    clock: FakeClock
    trunk: Trunk
    bisect: dict[str, Any]
    bot: Bot = field(init=False)
    ci: FakeCI = field(init=False)

    def __post_init__(self) -> None:
        store = Store(self.tmp_path / "bot.db")
        store.migrate()
        store.close()
        self.bot = self.new_bot()
        self.ci = FakeCI(self.github, self.trunk)
        page = parse_hud_page(self.trunk.hud_page(), REPO, "main")
        self.bot.ingestor.commits(REPO, "main", list(reversed(page.commits)))
        self.bot.ingestor.results(page.results)

    def settings(self) -> Settings:
        return Settings(database_path=str(self.tmp_path / "bot.db"),
                        github_api_url=self.github.url, github_token=TOKEN,
                        scheduler_enabled=False, routes=(Route(bisect=dict(self.bisect)),))

    def new_bot(self) -> Bot:
        return Bot(self.settings(), clock=self.clock, sender_options={"pace_s": 0.0})

    def restart(self) -> None:
        """A new process on the same database: nothing survives but SQLite."""
        self.bot.store.close()
        self.bot = self.new_bot()

    @property
    def alert_id(self) -> int:
        return int(self.bot.store.db.execute("SELECT min(id) FROM alerts").fetchone()[0])

    def start(self, **kwargs: Any) -> Any:
        return self.bot.bisects.start(self.alert_id, "U0SHERIFF", **kwargs)

    def tick(self, github: GitHubDispatcher | None = None) -> None:
        self.bot.bisects.advance(github)
        self.clock.advance(timedelta(minutes=1))

    def running(self) -> bool:
        return bisect_store.running_for_alert(self.bot.store.db, self.alert_id) is not None

    def run_to_end(self, max_ticks: int = 40) -> None:
        for _ in range(max_ticks):
            if not self.running():
                return
            self.tick()
            self.ci.finish_runs()
        raise AssertionError("the bisect did not end")

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in alert_store.events(self.bot.store.db, self.alert_id)
                if e.kind == kind]

    def last(self) -> bisect_store.Bisect:
        found = bisect_store.latest_for_alert(self.bot.store.db, self.alert_id)
        assert found is not None
        return found

    def run_probes(self) -> list[bisect_store.Probe]:
        return [p for p in bisect_store.probes(self.bot.store.db, self.last().id)
                if p.source == "run"]

    def status(self) -> str | None:
        row = self.bot.store.db.execute("SELECT bisect_status FROM alerts WHERE id = ?",
                                        [self.alert_id]).fetchone()
        return row[0]


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        fake.add_workflow(REPO, ".github/workflows/inductor.yml")
        yield fake


def make_world(tmp_path: Path, github: FakeGitHub, trunk: Trunk | None = None,
               **bisect: Any) -> World:
    trunk = trunk or broken_trunk()
    clock = FakeClock(trunk.times[-1] + timedelta(minutes=90))
    return World(tmp_path, github, clock, trunk, {**GITHUB_BISECT, **bisect})


@pytest.fixture
def world(tmp_path: Path, github: FakeGitHub) -> Iterator[World]:
    w = make_world(tmp_path, github)
    yield w
    w.bot.store.close()


# --------------------------------------------------------------------- the whole bisect


@pytest.mark.parametrize("k", [1, 3])
def test_bisect_names_the_planted_culprit_within_the_round_bound(
        tmp_path: Path, github: FakeGitHub, k: int) -> None:
    world = make_world(tmp_path, github, k=k)
    started = world.start()
    assert started.ok, started.text
    assert f"{SUSPECTS} suspects" in started.text and KEY in started.text
    [begun] = world.events("bisect_started")
    assert begun["suspects"] == SUSPECTS and begun["runs_per_round"] == k
    assert begun["key"] == KEY
    assert world.status() == f"starting, {SUSPECTS} suspects"

    world.tick()  # round 1 is dispatched
    assert len(github.dispatches) == k
    assert world.status() == f"round 1, {SUSPECTS} suspects"
    world.ci.finish_runs()
    world.tick()  # round 1 is read, round 2 dispatched
    assert world.status() is not None and world.status().startswith("round 2, 21 -> ")
    world.run_to_end()

    [found] = world.events("bisect_found")
    culprit = world.trunk.shas[CULPRIT]
    assert found["sha"] == culprit and found["confirmed"] is True
    assert found["title"] == world.trunk.titles[CULPRIT] and found["pr"] == 10000 + CULPRIT
    assert found["author"] == "dev2" and found["author_slack"] == "U0CULPRIT"
    assert found["revert"].startswith("@pytorchbot revert -m")
    rounds = world.events("bisect_round")
    confirmation = 1 if k > 1 else 2
    assert len(rounds) <= round_bound(SUSPECTS, k) + confirmation
    assert [r["round"] for r in rounds] == list(range(1, len(rounds) + 1))
    assert rounds[0]["before"] == SUSPECTS and rounds[-1]["after"] == 1
    assert all(p["url"] and p["outcome"] in ("pass", "fail") for r in rounds for p in r["probes"])

    # one dispatch per run the bisect planned, each at its own commit's tag
    probes = world.run_probes()
    assert len(github.dispatches) == len(probes) == found["runs"]
    assert sorted(d.ref for d in github.dispatches) == sorted(f"trunk/{p.sha}" for p in probes)
    job = KEY.partition(" / ")[2]
    assert all(d.inputs == {"jobs-to-include": job} for d in github.dispatches)
    assert world.last().state == "found" and world.status() is None

    # the runs' results came in through the normal ingest: the alert's range is the culprit
    detail = alert_detail(world.bot.store.db, world.alert_id)
    assert detail is not None and detail.suspect_count == 1
    assert detail.first_red is not None and detail.first_red.sha == culprit
    world.bot.store.close()


def test_the_thread_gets_one_reply_per_round_and_the_culprit(world: World) -> None:
    """Delivered through the real sender (console mode records what Slack would get)."""
    assert world.bot.sender.run_once()  # the alert's parent is in the channel already
    assert world.start().ok
    world.run_to_end()
    while world.bot.sender.run_once():
        pass
    posted = [params.get("text", "") for method, params in world.bot.slack_api.posted  # type: ignore[attr-defined]
              if method == "chat.postMessage" and params.get("thread_ts")]
    rounds = [text for text in posted if text.startswith(":mag: Bisect round")]
    assert len(rounds) == len(world.events("bisect_round"))
    assert "actions/runs/" in rounds[0] and ":white_check_mark: passes" in "".join(rounds)
    [found] = [text for text in posted if "found the culprit" in text]
    assert "<@U0CULPRIT>" in found and "/pull/10023|#10023>" in found
    assert "Next step: comment `@pytorchbot revert" in found


# --------------------------------------------------------------------- dispatch safety


def test_a_dispatch_that_failed_after_starting_its_run_is_not_sent_again(
        tmp_path: Path, github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, k=1)
    assert world.start().ok
    github.fail_dispatch_after_creating_run(502)
    world.tick()
    [probe] = world.run_probes()
    assert probe.state == "dispatching" and "502" in (probe.detail or "")
    world.ci.finish_runs()
    world.clock.advance(timedelta(minutes=10))  # well past the re-dispatch grace period
    world.tick()  # looks for the run first, finds it, reads it, dispatches round 2
    assert [p.state for p in world.run_probes()][0] == "done"
    assert len(github.requests_to(DISPATCH_PATH, "POST")) == 2
    assert len({d.ref for d in github.dispatches}) == 2  # round 2 is another commit
    world.run_to_end()
    assert len(github.dispatches) == len(world.run_probes())
    assert world.events("bisect_found")[0]["sha"] == world.trunk.shas[CULPRIT]
    world.bot.store.close()


def test_an_uncertain_dispatch_is_sent_again_only_after_looking_and_waiting(
        tmp_path: Path, github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, k=1)
    assert world.start().ok
    github.fail_next(DISPATCH_PATH, 502, method="POST")  # refused before any run started
    world.tick()
    assert github.dispatches == [] and world.run_probes()[0].state == "dispatching"
    world.tick()
    world.tick()  # two lookups found nothing, but the grace period is not over
    assert len(github.requests_to(DISPATCH_PATH, "POST")) == 1
    world.clock.advance(timedelta(minutes=5))
    world.tick()
    assert len(github.requests_to(DISPATCH_PATH, "POST")) == 2 and len(github.dispatches) == 1
    [probe] = world.run_probes()
    assert probe.attempt == 2 and probe.state == "dispatched"
    world.bot.store.close()


def test_a_run_github_lists_late_is_waited_for_not_dispatched_again(
        tmp_path: Path, github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, k=1)
    assert world.start().ok
    github.dispatched_run_hidden_for = 3
    world.tick()
    github.dispatched_run_hidden_for = 0
    world.ci.finish_runs()
    for _ in range(3):
        world.clock.advance(timedelta(minutes=10))
        world.tick()
        [probe] = world.run_probes()
        assert probe.state == "dispatched" and len(github.dispatches) == 1
    world.tick()
    assert world.run_probes()[0].state == "done" and world.run_probes()[0].run_id is not None
    world.run_to_end()
    assert len(github.dispatches) == len(world.run_probes())
    world.bot.store.close()


class _Crash(BaseException):
    """The process dies right after GitHub accepted the dispatch."""


class CrashingAfterDispatch(GitHubDispatcher):
    def dispatch(self, repo: str, workflow_file: str, ref: str,
                 inputs: Any) -> None:
        super().dispatch(repo, workflow_file, ref, inputs)
        raise _Crash


def test_a_restart_resumes_without_losing_or_repeating_runs(world: World) -> None:
    assert world.start().ok
    world.tick()
    world.ci.finish_runs()
    world.tick()  # round 1 read, round 2 dispatched
    crashing = CrashingAfterDispatch(world.github.url, TOKEN)
    world.ci.finish_runs()
    with pytest.raises(_Crash):
        world.tick(crashing)  # round 2 read; the first dispatch of round 3 reached GitHub
    crashing.close()
    assert any(p.state == "dispatching" for p in world.run_probes())
    sent = len(world.github.dispatches)

    world.restart()
    world.tick()  # finds the run the crash left behind, dispatches the rest of round 3
    world.ci.finish_runs()
    world.restart()
    world.run_to_end()
    assert len(world.github.dispatches) == len(world.run_probes()) > sent
    assert world.events("bisect_found")[0]["sha"] == world.trunk.shas[CULPRIT]
    assert len(world.events("bisect_round")) == world.last().round


# --------------------------------------------------------------------- start, cancel, limits


def test_only_one_of_two_racing_starts_wins(world: World) -> None:
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: world.start(), range(2)))
    assert sorted(a.ok for a in answers) == [False, True]
    [refused] = [a for a in answers if not a.ok]
    assert refused.code == "bisecting" and "already running" in refused.text
    again = world.start()
    assert not again.ok and "<@U0SHERIFF>" in again.text
    assert len(world.events("bisect_started")) == 1


def test_an_alert_resolved_while_a_bisect_starts_is_not_bisected(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """The open check is made again inside the write transaction that records the bisect."""
    from bot.bisect import service

    choose = service._choose_job

    def resolve_meanwhile(*args: Any, **kwargs: Any) -> Any:
        chosen = choose(*args, **kwargs)
        with world.bot.store.transaction() as db:  # another request resolves it now
            alert_store.resolve(db, world.alert_id, world.clock(), reason="fixed")
        return chosen

    monkeypatch.setattr(service, "_choose_job", resolve_meanwhile)
    answer = world.start()
    assert not answer.ok and answer.code == "resolved", answer
    assert world.bot.store.db.execute("SELECT count(*) FROM bisects").fetchone()[0] == 0


def test_cancel_stops_the_bisect(world: World) -> None:
    assert world.start().ok
    world.tick()
    dispatched = len(world.github.dispatches)
    done = world.bot.bisects.cancel(world.alert_id, "U0OTHER")
    assert done.ok and "Cancelled" in done.text
    [cancelled] = [e for e in alert_store.events(world.bot.store.db, world.alert_id)
                   if e.kind == "bisect_cancelled"]
    assert cancelled.actor == "U0OTHER"
    assert world.last().state == "cancelled" and world.status() is None
    world.ci.finish_runs()
    world.tick()
    assert len(world.github.dispatches) == dispatched and world.events("bisect_round") == []
    assert not world.bot.bisects.cancel(world.alert_id, "U0OTHER").ok
    assert world.start().ok  # a new bisect may start once the old one ended


def test_a_cancelled_bisect_dispatches_nothing_more(world: World) -> None:
    """A tick that planned a probe just before the cancel must not send it afterwards."""
    assert world.start().ok
    db = world.bot.store.db
    with world.bot.store.transaction():
        probe_id = bisect_store.add_probe(db, world.last().id, world.trunk.shas[15], 1)
    assert world.bot.bisects.cancel(world.alert_id, None).ok
    [probe] = [p for p in world.run_probes() if p.id == probe_id]
    with world.bot.store.transaction():
        assert not bisect_store.claim_dispatch(db, probe, world.clock(), None)


def test_a_spent_budget_ends_the_bisect_with_the_reason(tmp_path: Path,
                                                        github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, k=1, max_runs=2)
    assert world.start().ok
    world.run_to_end()
    [failed] = world.events("bisect_failed")
    assert failed["reason"] == "budget spent: 2 of 2 runs"
    assert 1 < failed["candidate_count"] <= 10  # two binary cuts left about a quarter
    assert world.trunk.shas[CULPRIT] in failed["candidates"]
    assert len(github.dispatches) == 2 and world.last().state == "failed"
    assert world.status() is None
    world.bot.store.close()


def test_a_refused_dispatch_fails_the_bisect(tmp_path: Path, github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, workflow="missing.yml")
    assert world.start().ok
    world.tick()
    [failed] = world.events("bisect_failed")
    assert "404" in failed["reason"] and "missing.yml" in failed["reason"]
    world.bot.store.close()


def test_refusals_say_why(tmp_path: Path, github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, k=3, max_k=4, max_concurrent=1)
    too_many = world.start(k=5)
    assert not too_many.ok and "between 1 and 4" in too_many.text
    unknown = world.start(job_key="nope")
    assert not unknown.ok and "No job of A1 matches `nope`" in unknown.text and KEY in unknown.text
    # another alert of the route is being bisected already
    db = world.bot.store.db
    with world.bot.store.transaction():
        other = db.execute("INSERT INTO alerts (route, repo, branch, team, priority, opened_at) "
                           "VALUES ('inductor', ?, 'main', 't', 'P2', '2025-01-01')",
                           [REPO]).lastrowid
        bisect_store.insert(db, alert_id=int(other or 0), route="inductor", repo=REPO,
                            branch="main", job_key=KEY, backend="github", k=1, last_good="a",
                            suspects=["b"], limits={}, started_by=None, now=world.clock())
    busy = world.start()
    assert not busy.ok and "1 bisects already running on this route (limit 1)" in busy.text
    world.bot.store.close()

    world.bot = Bot(replace(world.settings(), github_token=None), clock=world.clock)
    tokenless = world.start()
    assert not tokenless.ok and "GITHUB_TOKEN" in tokenless.text
    world.bot.store.close()

    world.bisect = {}
    world.bot = world.new_bot()
    off = world.start()
    assert not off.ok and off.code == "not_configured"
    assert "not configured for route `inductor`" in off.text and 'backend = "github"' in off.text
    world.bot.store.close()


def test_the_narrowest_job_is_bisected_unless_one_is_named(tmp_path: Path,
                                                          github: FakeGitHub) -> None:
    world = make_world(tmp_path, github, broken_trunk(timm_culprit=FIRST_RED - 2))
    keys = {m.job_key for m in alert_store.members(world.bot.store.db, world.alert_id)}
    assert keys == {KEY, TIMM_KEY}
    ambiguous = world.start(job_key="sm86")
    assert not ambiguous.ok and "matches 2 jobs" in ambiguous.text
    named = world.start(job_key="HUGGINGFACE")
    assert named.ok and world.last().job_key == KEY and len(world.last().suspects) == SUSPECTS
    assert world.bot.bisects.cancel(world.alert_id, None).ok
    default = world.start()
    assert default.ok and world.last().job_key == TIMM_KEY
    assert world.last().suspects == (world.trunk.shas[FIRST_RED - 2],)
    world.bot.store.close()


def test_the_bot_schedules_the_tick_and_checks_settings_at_start(world: World) -> None:
    world.bot.start()
    try:
        assert "bisects" in world.bot.scheduler.jobs
        assert world.bot.scheduler.run_now("bisects") == 0
    finally:
        world.bot.stop()
    world.bisect = {"backend": "github", "workflow": "x.yml", "ref": "main"}
    broken = world.new_bot()
    with pytest.raises(ConfigError, match="ref: must contain"):
        broken.start()
    broken.stop()


# --------------------------------------------------------------------- pieces


def test_route_settings_are_checked_with_the_key_named() -> None:
    def config(**table: Any) -> Any:
        return bisect_config(Route(bisect=table))

    assert config() is None
    local = config(backend="local", repo="/src", command="make test", timeout="30m")
    assert local.timeout == timedelta(minutes=30) and local.k == 3
    assert config(**GITHUB_BISECT).correlates is False
    tagged = config(backend="github", workflow="w.yml", ref="main",
                    inputs={"tag": "{correlation}"})
    assert tagged.correlates
    for table, problem in [
        ({"k": 2}, "backend: missing"),
        ({"backend": "jenkins"}, "expected one of"),
        ({"backend": "github"}, "workflow"),
        ({**GITHUB_BISECT, "inputs": {"x": "{commit}"}}, "unknown placeholder {commit}"),
        ({**GITHUB_BISECT, "colour": "red"}, "colour: unknown key"),
        ({**GITHUB_BISECT, "k": 9}, "k: must be between 1 and max_k (8)"),
        ({**GITHUB_BISECT, "max_concurrent": 0}, "must be at least 1"),
        ({"backend": "local", "repo": "/src"}, "command"),
    ]:
        with pytest.raises(BisectConfigError, match=problem.replace("(", r"\(").replace(
                ")", r"\)").replace("{", r"\{").replace("}", r"\}")):
            config(**table)


class SlackStub:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        assert method == "users.lookupByEmail"
        if params["email"] not in self.users:
            raise SlackError(method, "users_not_found")
        return {"ok": True, "user": {"id": self.users[params["email"]]}}


def test_culprit_authors_are_mapped_or_looked_up_by_email() -> None:
    config = bisect_config(Route(bisect={**GITHUB_BISECT, "authors": {"Alice": "U0ALICE"}}))
    assert config is not None
    slack = SlackStub({"bob@example.com": "U0BOB"})

    def lookup(email: str) -> str | None:
        return user_id_by_email(slack, email)

    assert author_slack_id("alice", config, lookup) == "U0ALICE"
    assert author_slack_id("bob@example.com", config, lookup) == "U0BOB"
    assert author_slack_id("carol@example.com", config, lookup) is None
    assert author_slack_id("carol", config, lookup) is None  # not an email: not looked up


def test_revert_hints() -> None:
    bisect = bisect_store.Bisect(1, 1, "inductor", REPO, "main", KEY, "github", 1, "found", "a",
                                 ("b",), {}, None, None, None, None, None, 1, 1)  # type: ignore[arg-type]
    plain = bisect_config(Route(bisect=GITHUB_BISECT))
    assert plain is not None
    assert revert_hint(bisect, plain, "c" * 40, 123).startswith('@pytorchbot revert -m "Broke')
    assert revert_hint(bisect, plain, "c" * 40, None) == f"git revert {'c' * 40}"
    custom = bisect_config(Route(bisect={**GITHUB_BISECT, "revert": "revert #{pr} ({short_sha})"}))
    assert custom is not None
    assert revert_hint(bisect, custom, "c" * 40, 7) == "revert #7 (cccccccccccc)"
    assert revert_hint(bisect, custom, "c" * 40, None) == f"git revert {'c' * 40}"


# --------------------------------------------------------------------- the local backend


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_local_backend_bisects_a_checkout(tmp_path: Path, github: FakeGitHub) -> None:
    repo = tmp_path / "src"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "dev@example.com")
    git(repo, "config", "user.name", "dev")
    shas = []
    for i in range(12):
        if i == 7:
            (repo / "broken").write_text("yes")
        (repo / "counter").write_text(str(i))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"change {i}")
        shas.append(git(repo, "rev-parse", "HEAD"))

    clock = FakeClock(Trunk.linear(1, []).times[0] + timedelta(days=1))
    store = Store(tmp_path / "bot.db")
    store.migrate()
    store.close()
    route = Route(bisect={"backend": "local", "repo": str(repo), "k": 2,
                          "command": "test ! -e broken", "timeout": "1m"})
    bot = Bot(Settings(database_path=str(tmp_path / "bot.db"), scheduler_enabled=False,
                       routes=(route,)), clock=clock)
    bot.ingestor.commits(REPO, "main", [Commit(sha, title=f"change {i}", author="dev",
                                               time=clock() - timedelta(hours=12 - i))
                                        for i, sha in enumerate(shas)])
    known = [(i, "success") for i in range(3)] + [(i, "failure") for i in range(9, 12)]
    bot.ingestor.results([JobResult(repo=REPO, sha=shas[i], workflow="inductor",
                                    job_name="local / test (unit)", job_id=100 + i,
                                    status="completed", conclusion=conclusion,
                                    completed_at=clock() - timedelta(hours=1))
                          for i, conclusion in known])
    alert_id = int(bot.store.db.execute("SELECT min(id) FROM alerts").fetchone()[0])
    assert bot.bisects.start(alert_id, "U0SHERIFF").ok
    for _ in range(12):
        if bisect_store.running_for_alert(bot.store.db, alert_id) is None:
            break
        bot.bisects.advance()
        wait_until(lambda: not any(bot.bisects.local.busy(p.id) for p in bisect_store.probes(
            bot.store.db, bisect_store.latest_for_alert(bot.store.db, alert_id).id)),  # type: ignore[union-attr]
            timeout=20, message="local probes to finish")
    found = [e.data for e in alert_store.events(bot.store.db, alert_id) if e.kind == "bisect_found"]
    assert [f["sha"] for f in found] == [shas[7]]
    assert git(repo, "worktree", "list").count("\n") == 0  # every probe's worktree is gone
    bot.store.close()


def test_local_probes_of_one_checkout_share_one_backend_and_its_git_lock(tmp_path: Path) -> None:
    """Concurrent ``git worktree add``/``remove`` in one checkout corrupt its bookkeeping
    ("failed to read .git/worktrees/.../commondir"): every probe of a checkout must go
    through the one backend whose lock serialises them."""
    store = Store(tmp_path / "bot.db")
    store.migrate()
    store.close()
    route = Route(bisect={"backend": "local", "repo": str(tmp_path), "k": 2,
                          "command": "true", "timeout": "1m"})
    other = Route(name="other", bisect={"backend": "local", "repo": str(tmp_path / "elsewhere"),
                                        "command": "true", "timeout": "1m"})
    bot = Bot(Settings(database_path=str(tmp_path / "bot.db"), scheduler_enabled=False,
                       routes=(route, other)))
    config, elsewhere = bisect_config(route), bisect_config(other)
    assert config is not None and elsewhere is not None
    assert bot.bisects.local.backend(config) is bot.bisects.local.backend(config)
    assert bot.bisects.local.backend(elsewhere) is not bot.bisects.local.backend(config)
    bot.store.close()



def test_evidence_guides_the_first_round_to_the_likeliest_suspect(world: World) -> None:
    # the failing shard's traceback names a file that only the culprit touched
    frame = "/opt/conda/lib/python3.10/site-packages/torch/_inductor/codegen/triton.py"
    lines = ("Traceback (most recent call last):", f'  File "{frame}", line 3, in f',
             "RuntimeError: bad tiling")
    found = from_reported(lines)
    classification = classify(lines, found)
    culprit = world.trunk.shas[CULPRIT]
    world.bot.ingestor.changed_files(REPO, [(culprit, ("torch/_inductor/codegen/triton.py",),
                                             "")], "push")
    failed = world.bot.store.db.execute(
        "SELECT job_id, sha, job_key, job_name, workflow FROM job_results "
        "WHERE conclusion = 'failure'").fetchall()
    with world.bot.store.transaction() as db:
        for job_id, sha, key, name, workflow in failed:
            result = JobResult(repo=REPO, sha=sha, workflow=workflow, job_name=name,
                               job_id=job_id, status="completed", conclusion="failure")
            evidence_store.record(db, result, key, found, classification,
                                  signature(found, classification), evidence_store.REPORTED,
                                  world.clock())
    started = world.start()
    assert started.ok, started.text
    assert world.last().ranked[0] == culprit
    [begun] = world.events("bisect_started")
    assert begun["likeliest"] == culprit and begun["guided"] is True
    world.tick()  # round 1: the culprit and its parent are among the probes
    assert {f"trunk/{culprit}", f"trunk/{world.trunk.shas[CULPRIT - 1]}"} <= {
        d.ref for d in world.github.dispatches}
    world.run_to_end()
    [found_event] = world.events("bisect_found")
    assert found_event["sha"] == culprit
    assert len(world.events("bisect_round")) == 2, "one round to bracket it, one to confirm"
    world.bot.store.close()
