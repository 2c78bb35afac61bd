"""Automatic retries in ``job_retries``: m017 keeps the rows people asked for, the budget is
counted and spent in one transaction (two writers never exceed it), and an alert finds the
bot's retries of its jobs by commit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.domain.auto_retry import AUTOMATIC
from bot.domain.model import JobResult
from bot.store import retries as store
from bot.store.db import Store
from migrations import migrations

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
REPO = "pytorch/pytorch"
KEY = "inductor / build / test (hf)"


def run(job_id: int, sha: str = "a" * 40, shard: int = 1) -> JobResult:
    return JobResult(repo=REPO, sha=sha, workflow="inductor",
                     job_name=f"build / test (hf, {shard}, 2, gpu)", job_id=job_id,
                     status="completed", conclusion="failure", run_id=77)


@pytest.fixture
def db_store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "bot.db")
    s.migrate()
    return s


def test_m017_keeps_the_retries_people_asked_for(tmp_path: Path) -> None:
    old = Store(tmp_path / "old.db")
    try:
        migrations.apply(old.db, stop_before="m017_auto_retries")
        with old.transaction() as db:
            db.execute("INSERT INTO alerts (route, repo, branch, team, priority, opened_at) "
                       "VALUES ('inductor', ?, 'main', 't', 'P2', ?)", [REPO, NOW.isoformat()])
            db.execute("INSERT INTO job_retries (id, alert_id, repo, sha, workflow, job_name, "
                       "job_key, job_id, requested_by, requested_at, state) VALUES "
                       "(5, 1, ?, ?, 'inductor', 'j', ?, 9, 'U1', ?, 'requested')",
                       [REPO, "b" * 40, KEY, NOW.isoformat()])
        assert old.migrate()[0] == "m017_auto_retries"  # and the later ones
        row = old.db.execute("SELECT id, alert_id, requested_by, state, route FROM job_retries"
                             ).fetchone()
        assert tuple(row) == (5, 1, "U1", "requested", None)
        with old.transaction() as db:  # the unique key survived the rebuild
            planned = store.plan_automatic(db, "inductor", 5, [
                JobResult(repo=REPO, sha="b" * 40, workflow="inductor", job_name="j", job_id=9,
                          status="completed", conclusion="failure")], KEY, NOW)
        assert planned == []
    finally:
        old.close()


def test_budget_is_spent_whole_cells_at_a_time(db_store: Store) -> None:
    try:
        with db_store.transaction() as db:
            first = store.plan_automatic(db, "inductor", 3, [run(1), run(2, shard=2)], KEY, NOW)
            assert first is not None and [r.requested_by for r in first] == [AUTOMATIC] * 2
            assert {r.alert_id for r in first} == {None} and first[0].route == "inductor"
            # one rerun left: a two-shard cell does not fit, a one-shard cell does
            assert store.plan_automatic(db, "inductor", 3, [run(3, "c" * 40),
                                                            run(4, "c" * 40, 2)], KEY, NOW) is None
            assert store.plan_automatic(db, "inductor", 3, [run(5, "d" * 40)], KEY, NOW)
            assert store.plan_automatic(db, "other", 1, [run(6, "e" * 40)], KEY, NOW), \
                "each route has its own budget"
        later = NOW + timedelta(hours=24, seconds=1)
        assert store.automatic_left(db_store.db, "inductor", 3, later) == 3, "a rolling day"
    finally:
        db_store.close()


def test_two_writers_never_spend_past_the_budget(tmp_path: Path) -> None:
    Store(tmp_path / "bot.db").migrate()
    planned: list[int] = []
    start = threading.Barrier(4)

    def writer(index: int) -> None:
        own = Store(tmp_path / "bot.db")
        try:
            start.wait(timeout=10)
            for n in range(5):
                with own.transaction() as db:
                    new = store.plan_automatic(db, "inductor", 6,
                                               [run(100 * index + n, f"{index}{n}".ljust(40, "f"))],
                                               KEY, NOW)
                    if new:
                        planned.append(len(new))
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(planned) == 6, "20 first failures asked for, 6 paid for"
    check = Store(tmp_path / "bot.db")
    try:
        assert check.db.execute("SELECT count(*) FROM job_retries").fetchone()[0] == 6
    finally:
        check.close()
