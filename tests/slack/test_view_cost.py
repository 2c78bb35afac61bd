"""What drawing an alert costs must not grow with the history behind it (#13): the App Home
and ``/inductor list`` draw every open alert, on a day of trunk as on a year of it.

Counted in SQLite virtual-machine steps (every row a statement reads or skips costs steps),
not in time: deterministic on a busy machine, and it sees a scan the planner chose however
fast the disk is today.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path

from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.ingest.pipeline import Ingestor
from bot.slack.present import build_alert_view
from bot.store.db import Store

REPO = "pytorch/pytorch"
T0 = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)
HF = "cuda12.8 / test (inductor_huggingface, {}, 2, linux.g5)"
TIMM = "cuda12.8 / test (inductor_timm, 1, 1, linux.g5)"
TEST_FAILED = ("FAILED [0.5s] inductor/test_torchinductor.py::GPUTests::test_a - "
               "RuntimeError: bad tiling",)
NO_SPACE = ("OSError: [Errno 28] No space left on device",)
STREAK = 3


def history(older: int) -> tuple[int, list[JobResult]]:
    """``older`` commits of a job that is often flaky (failing test_a, then passing on a
    rerun), fails twice in a row now and then, and a neighbour whose runner runs out of
    disk; then ten green commits and a streak of three. Returns (commits, runs)."""
    ids = count(1000)

    def run(i: int, name: str, conclusion: str, lines: tuple[str, ...] = ()) -> JobResult:
        return JobResult(repo=REPO, sha=f"{i:040x}", workflow="inductor", job_name=name,
                         job_id=next(ids), status="completed", conclusion=conclusion,
                         completed_at=T0 + timedelta(minutes=i), failure_lines=lines,
                         source="hud")

    runs: list[JobResult] = []
    for i in range(older):
        runs += [run(i, HF.format(1), "success"), run(i, TIMM, "success")]
        if i % 3 == 0:  # flaky: failed test_a, passed on a rerun
            runs += [run(i, HF.format(2), "failure", TEST_FAILED), run(i, HF.format(2), "success")]
        elif i % 10 in (4, 5):  # two failures in a row: below the threshold
            runs.append(run(i, HF.format(2), "failure", TEST_FAILED))
        else:
            runs.append(run(i, HF.format(2), "success"))
        if i % 7 == 0:
            runs.append(run(i, TIMM, "failure", NO_SPACE))
    for i in range(older, older + 10):
        runs += [run(i, HF.format(s), "success") for s in (1, 2)] + [run(i, TIMM, "success")]
    for i in range(older + 10, older + 10 + STREAK):
        runs += [run(i, HF.format(1), "success"), run(i, HF.format(2), "failure", TEST_FAILED),
                 run(i, TIMM, "failure", NO_SPACE)]
    return older + 10 + STREAK, runs


def steps_to_draw(tmp_path: Path, older: int) -> int:
    store = Store(tmp_path / f"{older}.db")
    store.migrate()
    try:
        commits, runs = history(older)
        ingestor = Ingestor(store, [Route()], lambda: T0 + timedelta(minutes=commits + 60))
        ingestor.commits(REPO, "main", [Commit(f"{i:040x}", f"change {i}",
                                               time=T0 + timedelta(minutes=i))
                                        for i in range(commits)])
        ingestor.results(runs)
        [(alert_id,)] = store.db.execute("SELECT id FROM alerts").fetchall()
        routes = {"inductor": Route()}
        build_alert_view(store.db, alert_id, routes)  # what is cached once is not the point
        steps = count()
        store.db.conn.set_progress_handler(lambda: next(steps) and 0, 1)
        try:
            view = build_alert_view(store.db, alert_id, routes)
        finally:
            store.db.conn.set_progress_handler(None, 1)
        assert view is not None and [j.key for j in view.jobs] == [
            "inductor / cuda12.8 / test (inductor_huggingface)"]
        assert any("known to be flaky" in a for a in view.jobs[0].against) == (older > 0)
        assert any(r.cause == "no space left on device" for r in view.failed_runs)
        return next(steps)
    finally:
        store.close()


def test_drawing_an_alert_costs_the_same_after_a_long_history(tmp_path: Path) -> None:
    """The same alert after 90 commits of history and after 900 (300 flaky cells, 120
    failed runs below the threshold, 129 infrastructure failures of a neighbour): the same
    work. Both histories have more flaky cells than the view reads (``FLAKY_HISTORY``), so
    any difference is a read that grows with the history (on main before #13's fix: 3,675
    steps against 6,145; the infrastructure failures were found by reading every failed
    run of the repository)."""
    short, long = steps_to_draw(tmp_path, 90), steps_to_draw(tmp_path, 900)
    assert long <= short * 1.1, (short, long)
