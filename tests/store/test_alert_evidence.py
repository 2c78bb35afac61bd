"""What an alert's evidence reads from the store: verdicts from the cells and runs behind a
streak, known-flaky tests, suspects ranked from the files their pushes touched."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.cells import cell_verdict
from bot.domain.jobkey import job_key
from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.ingest.pipeline import Ingestor
from bot.store import evidence
from bot.store import results as results_store
from bot.store.alert_evidence import FLAKY_HISTORY, alert_evidence
from bot.store.db import Store
from bot.store.details import alert_detail

REPO = "pytorch/pytorch"
T0 = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)
NAME = "cuda12.8 / test (inductor_huggingface, {}, 2, linux.g5)"
ERROR = ("FAILED [0.5s] inductor/test_torchinductor.py::GPUTests::test_a - "
         "RuntimeError: bad tiling")
FRAME = ('Traceback (most recent call last):',
         '  File "/opt/conda/lib/python3.10/site-packages/torch/_inductor/scheduler.py", '
         'line 9, in f', "RuntimeError: bad tiling")
_ids = iter(range(1000, 100000))


def sha(i: int) -> str:
    return f"{i:040x}"


def result(i: int, shard: int, conclusion: str, lines: tuple[str, ...] = ()) -> JobResult:
    return JobResult(repo=REPO, sha=sha(i), workflow="inductor", job_name=NAME.format(shard),
                     job_id=next(_ids), status="completed", conclusion=conclusion,
                     completed_at=T0 + timedelta(minutes=20 * i), failure_lines=lines,
                     source="hud")


def ingest(store: Store, route: Route, commits: int, runs: list[JobResult]) -> Ingestor:
    ingestor = Ingestor(store, [route], lambda: T0 + timedelta(hours=12))
    ingestor.commits(REPO, "main", [Commit(sha(i), f"change {i}", time=T0 +
                                           timedelta(minutes=20 * i)) for i in range(commits)])
    ingestor.changed_files(REPO, [(sha(i), (f"torch/_inductor/f{i}.py",), "")
                                  for i in range(commits)], "push")
    ingestor.changed_files(REPO, [(sha(3), ("torch/_inductor/scheduler.py",), "")], "push")
    ingestor.results(runs)
    return ingestor


def test_real_streak_ranks_the_suspect_touching_the_traceback_file(store: Store) -> None:
    route = Route()
    runs = [result(0, s, "success") for s in (1, 2)]
    runs += [result(i, 1, "success") for i in (4, 5, 6)]
    runs += [result(i, 2, "failure", (ERROR, *FRAME)) for i in (4, 5, 6)]
    ingest(store, route, 7, runs)
    detail = alert_detail(store.db, 1)
    assert detail is not None
    facts = alert_evidence(store.db, detail, code_area=route.code_area)
    [job] = facts.jobs.values()
    assert job.judgement.verdict.value == "real"
    assert job.headline == ERROR
    assert [r.job_name for r in facts.runs] == [NAME.format(2)]
    assert facts.ranking[0].sha == sha(3)
    assert facts.ranking[0].reasons[0].startswith("touches torch/_inductor/scheduler.py")


def test_flaky_evidence_nearby_and_known_flaky_tests(store: Store) -> None:
    route = Route()
    runs = [result(0, s, "success") for s in (1, 2)]
    # commit 1: shard 2 failed, then passed on a rerun: a flaky pass just before the streak
    runs += [result(1, 1, "success"), result(1, 2, "failure", (ERROR,)),
             result(1, 2, "success")]
    # commits 2..4 fail; at 4 shard 1 also failed and passed on a rerun
    runs += [result(i, 2, "failure", (ERROR,)) for i in (2, 3, 4)]
    runs += [result(i, 1, "success") for i in (2, 3)]
    runs += [result(4, 1, "failure", (ERROR,)), result(4, 1, "success")]
    ingest(store, route, 5, runs)
    detail = alert_detail(store.db, 1)
    assert detail is not None
    facts = alert_evidence(store.db, detail, flaky_tests=[r"test_a$"])
    [job] = facts.jobs.values()
    assert job.judgement.verdict.value == "unclear"  # same error 3x, but flaky signs too
    assert "the same error on 3 failing commits in a row (every failing commit)" in \
        job.judgement.evidence
    against = " / ".join(job.judgement.against)
    assert "shard 1/2 passed on a rerun at" in against
    assert f"passed only on a rerun at {sha(1)[:7]}, near this streak" in against
    assert "known to be flaky (inductor/test_torchinductor.py::GPUTests::test_a)" in against


def failed_test(name: str) -> tuple[str, ...]:
    return (f"FAILED [0.5s] inductor/test_torchinductor.py::GPUTests::{name} - "
            "RuntimeError: bad tiling",)


def test_a_test_seen_failing_and_passing_long_before_is_known_flaky(store: Store) -> None:
    """test_a failed and passed on a rerun at commit 1, 30 commits before the streak (far
    beyond the cells searched for flaky passes near it): the streak failing test_a says so."""
    runs = [result(i, s, "success") for i in range(34) for s in (1, 2) if (i, s) != (1, 2)]
    runs += [result(1, 2, "failure", failed_test("test_a")), result(1, 2, "success")]
    runs += [result(i, s, "failure", failed_test("test_a")) for i in (34, 35, 36) for s in (1, 2)]
    ingest(store, Route(), 37, runs)
    detail = alert_detail(store.db, 1)
    assert detail is not None
    [job] = alert_evidence(store.db, detail).jobs.values()
    assert ("known to be flaky (inductor/test_torchinductor.py::GPUTests::test_a)"
            in " / ".join(job.judgement.against))


def statements_of_the_alert_view(store: Store, flaky_cells: int) -> int:
    """Statements one alert view runs for a 3-commit streak after ``flaky_cells`` flaky
    passes of the same job, each failing the test the streak fails."""
    start = 40  # flaky passes at 0..flaky_cells-1, then green up to the streak
    runs = [result(i, 1, "success") for i in range(start + 3)]
    runs += [result(i, 2, "success") for i in range(start)]
    for i in range(flaky_cells):
        runs += [result(i, 2, "failure", failed_test("test_a"))]
    runs += [result(i, 2, "failure", failed_test("test_a")) for i in range(start, start + 3)]
    ingest(store, Route(), start + 3, runs)
    detail = alert_detail(store.db, 1)
    assert detail is not None
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        [job] = alert_evidence(store.db, detail).jobs.values()
    finally:
        store.db.conn.set_trace_callback(None)
    seen = "known to be flaky" in " / ".join(job.judgement.against)
    assert seen == bool(flaky_cells), (flaky_cells, job.judgement)
    return len(statements)


def test_the_alert_view_reads_no_more_with_a_long_flaky_history(tmp_path: Path) -> None:
    """The flaky-test evidence costs the same whether the job was flaky once or often: the
    view's statements do not grow with the flaky cells behind the streak (#13: App Home and
    /inductor list stay flat on a year of history)."""
    counts = []
    for flaky in (1, FLAKY_HISTORY + 10):
        store = Store(tmp_path / f"{flaky}.db")
        store.migrate()
        try:
            counts.append(statements_of_the_alert_view(store, flaky))
        finally:
            store.close()
    assert counts[0] == counts[1], counts


# --- the newest flaky cells' failed tests, against merging each cell's runs again -------------

SHARD_RUNS = st.lists(st.sampled_from(["success", "failure", "infra", "cancelled"]),
                      min_size=1, max_size=3)


def oracle_flaky_tests(db: object, key: str, newest: int) -> list[str]:
    """The tests of the flaky runs behind the job's newest flaky cells, from scratch: every
    cell's runs merged again, its flaky runs' evidence read one by one."""
    tests: list[str] = []
    shas = [row[0] for row in db.execute(  # type: ignore[attr-defined]
        "SELECT sha FROM cells WHERE job_key = ? AND status = 'flaky' "
        "ORDER BY position DESC LIMIT ?", [key, newest])]
    for cell_sha in shas:
        verdict = cell_verdict(results_store.results_for_cell(db, REPO, key, cell_sha))  # type: ignore[arg-type]
        found = evidence.of_jobs(db, REPO, [r.job_id for r in verdict.flaky_runs])  # type: ignore[arg-type]
        for e in found.values():
            tests += e.found.tests
    return tests


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(SHARD_RUNS, SHARD_RUNS, st.sampled_from(["test_a", "test_b"])),
                min_size=1, max_size=30),
       st.integers(min_value=1, max_value=8))
def test_flaky_cell_tests_match_merging_each_cell_again(
        commits: list[tuple[list[str], list[str], str]], newest: int) -> None:
    """Random runs per shard (passes, test failures, infrastructure failures, cancels), in
    any mix: the one-statement read gives the tests the full merge gives."""
    infra = ("No space left on device",)
    runs: list[JobResult] = []
    for i, (first, second, test) in enumerate(commits):
        for shard, conclusions in ((1, first), (2, second)):
            for c in conclusions:
                lines = {"failure": failed_test(test), "infra": infra}.get(c, ())
                runs.append(result(i, shard, "failure" if c == "infra" else c, lines))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bot.db")
        store.migrate()
        try:
            ingest(store, Route(), len(commits), runs)
            key = job_key("inductor", NAME.format(1))
            got = evidence.flaky_cell_tests(store.db, REPO, "main", key, newest)
            assert sorted(got) == sorted(oracle_flaky_tests(store.db, key, newest))
        finally:
            store.close()
