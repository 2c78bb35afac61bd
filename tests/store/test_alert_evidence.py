"""What an alert's evidence reads from the store: verdicts from the cells and runs behind a
streak, known-flaky tests, suspects ranked from the files their pushes touched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.ingest.pipeline import Ingestor
from bot.store.alert_evidence import alert_evidence
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
