"""Ingest scenarios through the real ``Ingestor`` and store: order, grouping, resolution, cost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.model import Commit, JobResult, PlacedCell
from bot.domain.route import Route
from bot.domain.streak import compute_streak
from bot.ingest.pipeline import Ingestor, IngestReport
from bot.store import alerts as alert_store
from bot.store import history
from bot.store.db import Store
from bot.store.details import AlertDetail, alert_detail, alert_ids
from tests.support.trunk import sha_for

REPO, BRANCH = "pytorch/pytorch", "main"
T0 = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)


def sha(i: int) -> str:
    return sha_for(i, "pipeline")


def key(job: str) -> str:
    return f"inductor / cuda12.8 / test ({job})"


@dataclass
class Bot:
    """An ``Ingestor`` on a store with a hand-driven clock and per-job id counters."""

    store: Store
    route: Route = field(default_factory=Route)
    now: datetime = T0 + timedelta(days=1)
    next_id: int = 1
    ingestor: Ingestor = field(init=False)
    woken: list[set[int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ingestor = Ingestor(self.store, [self.route], lambda: self.now,
                                 on_change=self.woken.append)

    def push(self, *indexes: int, after: int | None = None) -> IngestReport:
        commits = [Commit(sha(i), title=f"change {i}", author="dev", time=T0 + timedelta(
            minutes=20 * i)) for i in indexes]
        return self.ingestor.commits(REPO, BRANCH, commits,
                                     after=None if after is None else sha(after))

    def job(self, index: int, conclusion: str | None, job: str = "inductor_timm", *,
            shard: tuple[int, int] = (1, 1), attempt: int = 1, workflow: str = "inductor",
            qualifier: str = "", completed_at: datetime | None = None,
            repo: str = REPO) -> IngestReport:
        self.next_id += 1
        done = conclusion not in (None, "queued", "in_progress")
        extra = f", {qualifier}" if qualifier else ""
        when = completed_at or T0 + timedelta(minutes=20 * index + 60 + attempt)
        return self.ingestor.result(JobResult(
            repo=repo, sha=sha(index), workflow=workflow,
            job_name=f"cuda12.8 / test ({job}, {shard[0]}, {shard[1]}, linux.g5{extra})",
            job_id=self.next_id, status="completed" if done else (conclusion or "queued"),
            conclusion=conclusion if done else None, attempt=attempt, branch=BRANCH,
            completed_at=when if done else None,
        ))

    def jobs(self, indexes: range | list[int], conclusion: str, job: str = "inductor_timm"
             ) -> None:
        for i in indexes:
            self.job(i, conclusion, job)

    def alerts(self) -> list[AlertDetail]:
        db = self.store.db
        return [d for i in alert_ids(db) if (d := alert_detail(db, i)) is not None]

    def only_alert(self) -> AlertDetail:
        (alert,) = self.alerts()
        return alert


@pytest.fixture
def bot(store: Store) -> Bot:
    return Bot(store)


def suspects(alert: AlertDetail) -> list[str]:
    return [c.sha for c in alert.suspects]


def job_of(alert: AlertDetail, job: str) -> tuple[int, str, str, str | None, bool]:
    (detail,) = [j for j in alert.jobs if j.key == key(job)]
    return (detail.streak, detail.first_failing_sha, detail.newest_failing_sha,
            detail.last_green_sha, detail.recovered)


# --- order --------------------------------------------------------------------------------------


def test_three_failures_open_one_alert(bot: Bot) -> None:
    bot.push(0, 1, 2, 3)
    bot.job(0, "success")
    bot.jobs([1, 2], "failure")
    assert bot.alerts() == []
    report = bot.job(3, "failure")
    alert = bot.only_alert()
    assert report.alerts == {alert.id} and bot.woken == [{alert.id}]
    assert (alert.state, alert.team, alert.priority) == ("open", "broken-inductor", "P2")
    assert job_of(alert, "inductor_timm") == (3, sha(1), sha(3), sha(0), False)
    assert alert.first_red is not None and alert.first_red.sha == sha(1)
    assert alert.last_green is not None and alert.last_green.sha == sha(0)
    assert suspects(alert) == [sha(1)]


def test_results_before_their_push_wait_and_land_in_trunk_order(bot: Bot) -> None:
    bot.push(0, 1)
    bot.jobs([0, 1], "success")
    # results for commits 2..4 arrive before the push that places them, newest first
    for i in (4, 3, 2):
        bot.job(i, "failure")
    assert bot.alerts() == []
    assert [c.sha for c in history.cell_rows(bot.store.db, REPO, BRANCH, key("inductor_timm"))
            ] == [sha(1), sha(0)]
    bot.push(2, 3, 4)
    alert = bot.only_alert()
    assert job_of(alert, "inductor_timm") == (3, sha(2), sha(4), sha(1), False)
    assert suspects(alert) == [sha(2)]


def test_late_green_on_an_older_commit_narrows_the_range(bot: Bot) -> None:
    bot.push(*range(0, 7))
    bot.job(0, "success")
    bot.jobs(range(3, 7), "failure")  # 1 and 2 have not reported yet
    alert = bot.only_alert()
    assert suspects(alert) == [sha(1), sha(2), sha(3)]
    bot.job(2, "success")  # late, at its place in trunk order
    alert = bot.only_alert()
    assert alert.state == "open"
    assert job_of(alert, "inductor_timm") == (4, sha(3), sha(6), sha(2), False)
    assert suspects(alert) == [sha(3)]


def test_late_older_success_does_not_resolve(bot: Bot) -> None:
    """A pass that arrives late for a commit *older* than the streak is its last green."""
    bot.push(*range(0, 7))
    bot.job(0, "in_progress")
    bot.jobs([1, 2, 3, 4], "failure")
    assert job_of(bot.only_alert(), "inductor_timm") == (4, sha(1), sha(4), None, False)
    bot.job(0, "success")
    alert = bot.only_alert()
    assert alert.state == "open"
    assert job_of(alert, "inductor_timm") == (4, sha(1), sha(4), sha(0), False)


def test_a_late_pass_between_the_failures_shows_they_were_no_streak(bot: Bot) -> None:
    """Failures at 1, 2, 4, 5 with 3 still running opened an alert; then 3 passed. The
    facts are two streaks of two: no alert would have opened on them, so it is resolved,
    saying why; a third failure after 3 starts a streak of its own."""
    bot.push(*range(0, 7))
    bot.job(0, "success")
    bot.jobs([1, 2, 4, 5], "failure")  # 3 still running
    bot.job(3, "in_progress")
    assert job_of(bot.only_alert(), "inductor_timm") == (4, sha(1), sha(5), sha(0), False)
    bot.job(3, "success")
    alert = bot.only_alert()
    assert alert.state == "resolved" and alert.resolved_sha == sha(3)
    assert alert.resolve_reason is not None and "late results" in alert.resolve_reason
    [withdrawn] = [e for e in alert_store.events(bot.store.db, alert.id)
                   if e.kind == "job_withdrawn"]
    assert withdrawn.data["key"] == key("inductor_timm") and withdrawn.data["sha"] == sha(3)
    bot.job(6, "failure")
    first, second = bot.alerts()
    assert first.id == alert.id and first.state == "resolved"
    assert job_of(second, "inductor_timm") == (3, sha(4), sha(6), sha(3), False)


def test_pass_on_a_newer_commit_resolves(bot: Bot) -> None:
    bot.push(*range(0, 6))
    bot.job(0, "success")
    bot.jobs(range(1, 4), "failure")
    bot.job(4, "in_progress")
    assert bot.only_alert().state == "open"
    bot.job(5, "success")
    alert = bot.only_alert()
    assert alert.state == "resolved" and alert.resolved_sha == sha(5)
    assert job_of(alert, "inductor_timm")[-1] is True
    assert alert.resolved_at == bot.now


def test_flaky_rerun_pass_at_the_newest_failing_commit_resolves(bot: Bot) -> None:
    bot.push(*range(0, 4))
    bot.job(0, "success")
    bot.jobs(range(1, 4), "failure")
    bot.job(3, "failure", attempt=2)  # a rerun that fails again changes nothing
    assert bot.only_alert().state == "open"
    bot.job(3, "success", attempt=3)
    alert = bot.only_alert()
    assert alert.state == "resolved" and alert.resolved_sha == sha(3)
    # the flaky pass leaves two failing commits in a row: the job is taken back, flaky
    taken_back = [e for e in alert_store.events(bot.store.db, alert.id)
                  if e.kind in ("job_recovered", "job_withdrawn")]
    assert [(e.kind, e.data["flaky"]) for e in taken_back] == [("job_withdrawn", True)]


def test_sharded_job_is_one_key_and_any_failed_shard_fails_it(bot: Bot) -> None:
    bot.push(*range(0, 4))
    for i in range(0, 4):
        bot.job(i, "success", shard=(1, 2))
        bot.job(i, "failure" if i else "success", shard=(2, 2))
    alert = bot.only_alert()
    assert [j.key for j in alert.jobs] == [key("inductor_timm")]
    assert job_of(alert, "inductor_timm") == (3, sha(1), sha(3), sha(0), False)


# --- grouping -----------------------------------------------------------------------------------


def test_overlapping_ranges_share_one_alert_with_the_intersection(bot: Bot) -> None:
    bot.push(*range(0, 7))
    bot.job(1, "success", "a")  # a: (1, 3]
    bot.jobs(range(3, 7), "failure", "a")
    bot.job(2, "success", "b")  # b: (2, 4]
    bot.jobs(range(4, 7), "failure", "b")
    alert = bot.only_alert()
    assert {j.key for j in alert.jobs} == {key("a"), key("b")}
    assert alert.last_green is not None and alert.last_green.sha == sha(2)
    assert alert.first_red is not None and alert.first_red.sha == sha(3)
    assert suspects(alert) == [sha(3)]


def test_alert_range_follows_late_results_of_its_members(bot: Bot) -> None:
    bot.push(*range(0, 8))
    bot.jobs(range(4, 8), "failure", "a")  # a: (?, 4]
    bot.jobs(range(5, 8), "failure", "b")  # b: (?, 5], joins
    alert = bot.only_alert()
    assert len(alert.jobs) == 2 and alert.last_green is None
    assert suspects(alert) == [sha(i) for i in range(0, 5)]
    bot.job(2, "success", "b")  # b: (2, 5]  -> alert (2, 4]
    assert suspects(bot.only_alert()) == [sha(3), sha(4)]
    bot.job(3, "success", "a")  # a: (3, 4] -> alert (3, 4]
    assert suspects(bot.only_alert()) == [sha(4)]


def test_disjoint_ranges_open_two_alerts(bot: Bot) -> None:
    bot.push(*range(0, 9))
    bot.job(0, "success", "a")  # a: (0, 1]
    bot.jobs(range(1, 9), "failure", "a")
    bot.job(5, "success", "b")  # b: (5, 6]
    bot.jobs(range(6, 9), "failure", "b")
    first, second = bot.alerts()
    assert [j.key for j in first.jobs] == [key("a")] and suspects(first) == [sha(1)]
    assert [j.key for j in second.jobs] == [key("b")] and suspects(second) == [sha(6)]


def test_alert_resolves_only_when_every_job_recovered(bot: Bot) -> None:
    bot.push(*range(0, 6))
    for job in ("a", "b"):
        bot.job(0, "success", job)
        bot.jobs(range(1, 4), "failure", job)
    bot.job(4, "success", "a")
    alert = bot.only_alert()
    assert alert.state == "open"
    assert [j.recovered for j in alert.jobs] == [True, False]
    bot.job(5, "success", "b")
    alert = bot.only_alert()
    assert alert.state == "resolved" and alert.resolved_sha == sha(5)


def test_job_failing_again_after_resolution_opens_a_new_alert(bot: Bot) -> None:
    bot.push(*range(0, 9))
    bot.job(0, "success")
    bot.jobs(range(1, 4), "failure")
    bot.job(4, "success")
    bot.jobs(range(5, 8), "failure")
    first, second = bot.alerts()
    assert first.state == "resolved" and second.state == "open"
    assert suspects(second) == [sha(5)]


# --- what is watched -----------------------------------------------------------------------------


def test_excluded_and_unwatched_jobs_are_ignored(bot: Bot) -> None:
    bot.push(*range(0, 5))
    reports = []
    for i in range(0, 5):
        reports.append(bot.job(i, "failure", workflow="pull"))
        reports.append(bot.job(i, "failure", qualifier="unstable"))
        reports.append(bot.job(i, "failure", "inductor_timm_mem_leak_check"))
        reports.append(bot.job(i, "failure", repo="someone/fork"))
    assert bot.alerts() == []
    assert all(r.ignored == 1 and r.results_stored == 0 for r in reports)
    assert bot.store.db.execute("SELECT count(*) FROM job_results").fetchone()[0] == 0


def test_pushes_to_other_branches_and_repos_are_ignored(bot: Bot) -> None:
    other = bot.ingestor.commits(REPO, "release/2.9", [Commit(sha(1))])
    fork = bot.ingestor.commits("someone/fork", BRANCH, [Commit(sha(2))])
    assert other.ignored == 1 and fork.ignored == 1
    assert bot.store.db.execute("SELECT count(*) FROM commits").fetchone()[0] == 0


def test_threshold_comes_from_the_route(store: Store) -> None:
    bot = Bot(store, route=Route(threshold=2))
    bot.push(0, 1, 2)
    bot.job(0, "success")
    bot.jobs([1, 2], "failure")
    assert bot.only_alert().jobs[0].streak == 2


# --- max_age ------------------------------------------------------------------------------------


def test_old_failures_do_not_alert(bot: Bot) -> None:
    bot.push(*range(0, 5))
    bot.now = T0 + timedelta(days=3)
    bot.job(0, "success")
    reports = [bot.job(i, "failure") for i in range(1, 4)]  # completed on day 0: > 24 h ago
    assert bot.alerts() == []
    assert [r.too_old for r in reports[:2]] == [[], []], "below the threshold: nothing to say"
    [quiet] = reports[2].too_old  # the third failure met the threshold, too late
    assert (quiet.route, quiet.job_key, quiet.streak) == ("inductor", key("inductor_timm"), 3)
    assert quiet.newest_failure.sha == sha(3) and quiet.max_age == timedelta(hours=24)
    line = quiet.describe(bot.now)
    assert line.startswith(f"{key('inductor_timm')} (route inductor): 3 failing commits")
    assert f"({sha(3)[:10]}) is 2d" in line and "max_age 1d: no alert" in line
    report = bot.job(4, "failure", completed_at=bot.now - timedelta(hours=23))
    assert report.too_old == [] and report.alerts
    alert = bot.only_alert()
    assert job_of(alert, "inductor_timm") == (4, sha(1), sha(4), sha(0), False)
    bot.push(5, after=4)
    late = bot.job(5, "failure")  # an old time, but the job is in an open alert already
    assert late.too_old == [] and late.alerts, "a job in an open alert is not reported"


def test_failure_time_falls_back_to_the_commit_time(bot: Bot) -> None:
    # HUD results carry no completion time: the commit's own time is used
    bot.push(*range(0, 4))
    bot.now = T0 + timedelta(days=2)
    for i in range(0, 4):
        bot.ingestor.result(JobResult(
            repo=REPO, sha=sha(i), workflow="inductor",
            job_name="cuda12.8 / test (inductor_timm, 1, 1, linux.g5)", job_id=500 + i,
            status="completed", conclusion="failure" if i else "success", source="hud"))
    assert bot.alerts() == []


def event_jobs(event: alert_store.AlertEvent) -> list[tuple[str, int]]:
    """The (job key, streak) pairs an event names, whether it names one job or several."""
    if "jobs" in event.data:
        return [(j["key"], j["streak"]) for j in event.data["jobs"]]
    return [(event.data["key"], event.data["streak"])]


# --- timeline -----------------------------------------------------------------------------------


def test_timeline_records_each_change_with_actor_and_time(bot: Bot) -> None:
    bot.push(*range(0, 7))
    bot.job(0, "success", "a")
    bot.job(0, "success", "b")
    steps: list[tuple[str, datetime]] = []

    def at(hours: int) -> datetime:
        bot.now = T0 + timedelta(days=1, hours=hours)
        return bot.now

    at(0)
    bot.jobs(range(1, 4), "failure", "a")
    steps.append(("opened", bot.now))
    at(1)
    bot.jobs(range(1, 4), "failure", "b")
    steps.append(("job_joined", bot.now))
    at(2)
    bot.job(4, "failure", "a")
    steps.append(("extended", bot.now))
    at(3)
    bot.job(5, "success", "a")
    steps.append(("job_recovered", bot.now))
    at(4)
    bot.job(4, "success", "b")
    steps.extend([("job_recovered", bot.now), ("resolved", bot.now)])

    alert = bot.only_alert()
    events = alert_store.events(bot.store.db, alert.id)
    assert [(e.kind, e.at) for e in events] == steps
    assert all(e.actor is None for e in events)  # the engine acts, not a person
    opened, joined, extended, recovered_a, recovered_b, resolved = events
    assert opened.data == {"key": key("a"), "streak": 3, "sha": sha(1)}
    assert joined.data == {"key": key("b"), "streak": 3, "sha": sha(1)}
    assert event_jobs(extended) == [(key("a"), 4)] and extended.data["sha"] == sha(4)
    assert recovered_a.data == {"key": key("a"), "sha": sha(5), "flaky": False}
    assert recovered_b.data == {"key": key("b"), "sha": sha(4), "flaky": False}
    # in trunk order the alert went green at 5, where the last of its jobs recovered
    assert resolved.data["sha"] == sha(5) and resolved.data["duration_s"] == 4 * 3600
    assert alert.version > len(events)  # every event re-renders the Slack message


def test_manual_resolution_is_recorded_with_its_actor(bot: Bot) -> None:
    bot.push(*range(0, 4))
    bot.jobs(range(0, 4), "failure")
    alert = bot.only_alert()
    with bot.store.transaction() as db:
        assert alert_store.resolve(db, alert.id, bot.now, actor="U0SHERIFF", reason="reverted")
        assert not alert_store.resolve(db, alert.id, bot.now, actor="U0OTHER")
    last = alert_store.events(bot.store.db, alert.id)[-1]
    assert (last.kind, last.actor, last.at) == ("resolved", "U0SHERIFF", bot.now)
    assert last.data["reason"] == "reverted"


# --- redelivery ----------------------------------------------------------------------------------


def test_redelivered_result_changes_nothing(bot: Bot) -> None:
    bot.push(*range(0, 4))
    result = JobResult(repo=REPO, sha=sha(3), workflow="inductor",
                       job_name="cuda12.8 / test (inductor_timm, 1, 1, linux.g5)", job_id=77,
                       status="completed", conclusion="failure", completed_at=T0)
    bot.jobs(range(0, 3), "failure")
    bot.ingestor.result(result)
    conn = bot.store.db.conn
    before, snapshot = conn.total_changes, dump(bot.store)
    report = bot.ingestor.result(result)
    assert report.results_stored == 0 and not report.alerts
    assert conn.total_changes == before  # not even a rewrite of the same values
    again = bot.push(*range(0, 4))
    assert again.commits_placed == 0 and not again.alerts
    assert dump(bot.store) == snapshot


def dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    db = store.db
    return {t: sorted(db.execute(f"SELECT * FROM [{t}]").fetchall(), key=repr)
            for t in db.table_names() if not t.startswith(("_", "sqlite_"))}


# --- incremental cost ----------------------------------------------------------------------------


@dataclass
class Cost:
    statements: list[str] = field(default_factory=list)
    steps: int = 0


@contextmanager
def measured(store: Store) -> Iterator[Cost]:
    """Count SQL statements and SQLite VM steps (in units of 10) run on this connection."""
    cost = Cost()
    conn = store.db.conn

    def step() -> int:
        cost.steps += 1
        return 0

    conn.set_trace_callback(cost.statements.append)
    conn.set_progress_handler(step, 10)
    try:
        yield cost
    finally:
        conn.set_trace_callback(None)
        conn.set_progress_handler(None, 0)


def _long_history(tmp_path: Path, commits: int) -> Bot:
    bot = Bot(Store(tmp_path / f"long{commits}.db"))
    bot.store.migrate()
    bot.push(*range(commits))
    for job in ("a", "b"):
        bot.ingestor.results([JobResult(
            repo=REPO, sha=sha(i), workflow="inductor",
            job_name=f"cuda12.8 / test ({job}, 1, 1, linux.g5)", job_id=i * 2 + (job == "b"),
            status="completed", conclusion="success", completed_at=T0) for i in range(commits)])
    bot.next_id = 10 * commits
    return bot


def _cost_of_one_result(bot: Bot, index: int, conclusion: str) -> Cost:
    with measured(bot.store) as cost:
        bot.job(index, conclusion, "a")
    return cost


def test_one_result_does_not_rescan_history(tmp_path: Path) -> None:
    short, long = _long_history(tmp_path, 200), _long_history(tmp_path, 2000)
    try:
        for index_from_head, conclusion in ((0, "failure"), (150, "failure"), (0, "success")):
            small = _cost_of_one_result(short, 199 - index_from_head, conclusion)
            large = _cost_of_one_result(long, 1999 - index_from_head, conclusion)
            assert len(large.statements) == len(small.statements) < 40
            # the work done must not grow with the history (10x longer here): allow noise
            # from B-tree depth, forbid anything proportional to the number of commits
            assert large.steps < 2 * small.steps + 50, (small.steps, large.steps)
            assert large.steps * 10 < 2000, large.steps
    finally:
        short.store.close()
        long.store.close()


def test_one_push_does_not_rescan_history(tmp_path: Path) -> None:
    """Placing a new commit looks up the results waiting for it, not every result stored."""
    short, long = _long_history(tmp_path, 200), _long_history(tmp_path, 2000)
    try:
        for bot, head in ((short, 200), (long, 2000)):
            bot.job(head, "failure", "a")  # a result that arrives before its push
        with measured(short.store) as small:
            short.push(200, after=199)
        with measured(long.store) as large:
            long.push(2000, after=1999)
        assert len(large.statements) == len(small.statements)
        assert large.steps < 2 * small.steps + 50, (small.steps, large.steps)
        for bot in (short, long):
            cells = history.cell_rows(bot.store.db, REPO, BRANCH, key("a"))
            assert cells[0].sha == sha(len(cells) - 1) and cells[0].status.value == "failure"
    finally:
        short.store.close()
        long.store.close()


def test_streak_walk_reads_only_as_far_as_the_streak(tmp_path: Path) -> None:
    bot = _long_history(tmp_path, 2000)
    try:
        bot.ingestor.results([JobResult(
            repo=REPO, sha=sha(i), workflow="inductor",
            job_name="cuda12.8 / test (c, 1, 1, linux.g5)", job_id=100_000 + i,
            status="completed", conclusion="failure" if i >= 1990 else "success",
            completed_at=T0) for i in range(2000)])
        rows_read: list[int] = []
        walk = history.walk_cells(bot.store.db, REPO, BRANCH, key("c"))

        def counted() -> Iterator[PlacedCell]:
            for cell in walk:
                rows_read.append(cell.position)
                yield cell

        streak = compute_streak(counted())
        assert streak.length == 10 and len(rows_read) == 11
    finally:
        bot.store.close()


def test_a_cell_whose_runs_retention_removed_is_still_read_back(bot: Bot) -> None:
    """Retention drains results before cells: a commit can keep its cell with no run left.
    A rerun there must be judged against that cell (a pass gone joins two streaks), even
    though no run is stored at the commit before it."""
    bot.push(0, 1, 2, 3, 4)
    bot.job(0, "success")
    bot.jobs([1, 2], "failure")
    bot.job(3, "success")
    bot.job(4, "failure")
    assert bot.alerts() == []  # 2 + 1 failures, a pass between
    with bot.store.transaction() as db:  # what the results drain of retention leaves
        db.execute("DELETE FROM results WHERE sha = (SELECT id FROM ci_shas WHERE sha = ?)",
                   [sha(3)])
    bot.job(3, "in_progress")  # a rerun starts: the pass at 3 is gone
    alert = bot.only_alert()
    assert job_of(alert, "inductor_timm") == (3, sha(1), sha(4), sha(0), False)
