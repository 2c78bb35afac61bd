"""The SQLite store: migrations, WAL, concurrent writers, raw facts and trunk order."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlite_utils

from bot.domain.jobkey import job_key
from bot.domain.model import Commit, JobResult
from bot.domain.route import Route
from bot.ingest.pipeline import Ingestor
from bot.store import alerts as alert_store
from bot.store import history
from bot.store import results as results_store
from bot.store.db import Store
from migrations import migrations

NOW = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)
REPO, BRANCH = "pytorch/pytorch", "main"
JOB = "cuda12.8 / test (inductor_timm, 1, 1, linux.g5)"
KEY = job_key("inductor", JOB)
THREAD_TIMEOUT_S = 60.0


def all_migration_names() -> list[str]:
    return [m.name for m in migrations.pending(sqlite_utils.Database(memory=True))]


def schema(db: sqlite_utils.Database) -> set[tuple[str, str, str]]:
    return {
        (kind, name, " ".join(sql.split()))
        for kind, name, sql in db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")
    }


def result(job_id: int, sha: str, conclusion: str | None = "success",
           status: str = "completed", name: str = JOB) -> JobResult:
    return JobResult(repo=REPO, sha=sha, workflow="inductor", job_name=name, job_id=job_id,
                     status=status, conclusion=conclusion, branch=BRANCH,
                     completed_at=NOW if status == "completed" else None)


def positions(db: sqlite_utils.Database) -> list[str]:
    return [row[0] for row in db.execute(
        "SELECT sha FROM commits WHERE repo = ? AND branch = ? ORDER BY position", [REPO, BRANCH])]


# --- migrations -------------------------------------------------------------------------------


def test_there_are_migrations_to_test() -> None:
    names = all_migration_names()
    assert names[:2] == ["m001_ci_history", "m002_alerts"]
    assert len(names) == len(set(names))


def test_migrate_empty_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "empty.db")
    try:
        assert store.pending_migrations() == all_migration_names()
        assert store.migrate() == all_migration_names()
        assert store.pending_migrations() == []
        tables = set(store.db.table_names())
        assert {"commits", "results", "cell_rows", "deliveries", "alerts", "alert_jobs",
                "alert_events"} <= tables
        assert {"cells", "job_results"} <= set(store.db.view_names())
    finally:
        store.close()


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    store = Store(tmp_path / "twice.db")
    try:
        store.migrate()
        before = schema(store.db)
        applied = [m.name for m in migrations.applied(store.db)]
        assert store.migrate() == []
        assert schema(store.db) == before
        assert [m.name for m in migrations.applied(store.db)] == applied
    finally:
        store.close()


@pytest.mark.parametrize("stop_before", all_migration_names()[1:])
def test_upgrade_from_each_earlier_migration(tmp_path: Path, stop_before: str) -> None:
    """A database left at an earlier migration upgrades to the same schema, keeping data."""
    reference = Store(tmp_path / "reference.db")
    old = Store(tmp_path / "old.db")
    try:
        reference.migrate()
        migrations.apply(old.db, stop_before=stop_before)
        names = all_migration_names()
        expected_applied = names[:names.index(stop_before)]
        assert [m.name for m in migrations.applied(old.db)] == expected_applied
        # the raw facts must survive every later migration. They are written as the code
        # of that stage wrote them: today's code expects today's columns
        with old.transaction() as db:
            db.execute("INSERT INTO commits (repo, branch, sha, position, recorded_at) "
                       "VALUES (?, ?, ?, ?, ?)", [REPO, BRANCH, "a" * 40, 65536, NOW.isoformat()])
            write_raw_result(db)
            write_cell(db, BRANCH, "a" * 40, NOW.isoformat())
            # a cell on a branch and at a commit no run names, without a time: its names
            # and sha are interned only by the migration that makes cells lean
            write_cell(db, "release/2.5", "b" * 40, None)

        assert old.migrate() == names[names.index(stop_before):]
        assert schema(old.db) == schema(reference.db)
        assert positions(old.db) == ["a" * 40]
        moved = old.db.execute("SELECT repo, sha, branch, workflow, job_name, job_key, attempt, "
                               "status, conclusion, source FROM job_results").fetchall()
        assert moved == [(REPO, "a" * 40, BRANCH, "inductor", KEY.partition(" / ")[2], KEY, 1,
                          "completed", "failure", "github")]
        cells = "SELECT repo, branch, job_key, sha, position, status, time FROM cells ORDER BY 2"
        assert old.db.execute(cells).fetchall() == [
            (REPO, BRANCH, KEY, "a" * 40, 65536, "failure", NOW.isoformat()),
            (REPO, "release/2.5", KEY, "b" * 40, 65536, "failure", None)]
        assert old.migrate() == []
    finally:
        reference.close()
        old.close()


def write_cell(db: sqlite_utils.Database, branch: str, sha: str, time: str | None) -> None:
    """One cell, in the shape the database has at its migration stage."""
    if "cells" in db.table_names():  # m001 .. m019
        db.execute("INSERT INTO cells (repo, branch, job_key, sha, position, status, time) "
                   "VALUES (?, ?, ?, ?, 65536, 'failure', ?)", [REPO, branch, KEY, sha, time])
    elif "cell_rows" in db.table_names():  # m020 on: names and sha as interned ids
        for text in (REPO, branch, KEY):
            db.execute("INSERT OR IGNORE INTO ci_strings (text) VALUES (?)", [text])
        db.execute("INSERT OR IGNORE INTO ci_shas (sha) VALUES (?)", [sha])
        db.execute(
            "INSERT INTO cell_rows (repo, branch, job_key, position, sha, status, time) "
            "SELECT rp.id, br.id, k.id, 65536, s.id, 'failure', ? FROM ci_strings rp, "
            "ci_strings br, ci_strings k, ci_shas s WHERE rp.text = ? AND br.text = ? "
            "AND k.text = ? AND s.sha = ?", [time, REPO, branch, KEY, sha])


def write_raw_result(db: sqlite_utils.Database) -> None:
    """One stored run, in the shape the database has at its migration stage."""
    view = db.execute("SELECT type FROM sqlite_master WHERE name = 'job_results'").fetchone()
    if view is not None and view[0] == "table":  # m001 .. m015
        db.execute("INSERT INTO job_results (repo, job_id, sha, branch, workflow, job_name, "
                   "job_key, attempt, status, conclusion, source, received_at) "
                   "VALUES (?, 1, ?, ?, 'inductor', ?, ?, 1, 'completed', 'failure', "
                   "'github', ?)", [REPO, "a" * 40, BRANCH, KEY.partition(" / ")[2], KEY,
                                    NOW.isoformat()])
        return
    ids = {}
    for text in (REPO, BRANCH, "inductor", KEY.partition(" / ")[2], KEY, "completed",
                 "failure", "github"):
        db.execute("INSERT OR IGNORE INTO ci_strings (text) VALUES (?)", [text])
        ids[text] = db.execute("SELECT id FROM ci_strings WHERE text = ?", [text]).fetchone()[0]
    db.execute("INSERT INTO ci_shas (sha) VALUES (?)", ["a" * 40])
    sha = db.execute("SELECT id FROM ci_shas").fetchone()[0]
    db.execute("INSERT INTO results (job_id, repo, sha, job_key, workflow, job_name, ref, "
               "attempt, status, conclusion, source) VALUES (1, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
               [ids[REPO], sha, ids[KEY], ids["inductor"], ids[KEY.partition(" / ")[2]],
                ids[BRANCH], ids["completed"], ids["failure"], ids["github"]])


# --- connection settings -----------------------------------------------------------------------


def test_wal_mode_and_busy_timeout(store: Store) -> None:
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000
    # a connection opened by someone else sees WAL too: it is a property of the file
    other = sqlite3.connect(store.path)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_each_thread_gets_its_own_connection(store: Store) -> None:
    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(id(store.db.conn)))
    worker.start()
    worker.join(THREAD_TIMEOUT_S)
    assert seen and seen[0] != id(store.db.conn)


# --- transactions -----------------------------------------------------------------------------


def _new_alert(db: sqlite_utils.Database) -> int:
    cursor = db.execute(
        "INSERT INTO alerts (route, repo, branch, team, priority, opened_at) "
        "VALUES ('inductor', ?, ?, 'broken-inductor', 'P2', ?)", [REPO, BRANCH, NOW.isoformat()])
    return int(cursor.lastrowid or 0)


def test_transaction_rolls_back_on_error(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as db:
        _new_alert(db)
        raise RuntimeError("boom")
    assert store.db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0
    assert not store.db.conn.in_transaction


def test_nested_transaction_joins_the_outer_one(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        with store.transaction() as inner:
            _new_alert(inner)
        raise RuntimeError("outer fails after inner finished")
    assert store.db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 0


def _run_threads(count: int,
                 target: Callable[[int, threading.Barrier], None]) -> list[BaseException]:
    """Start ``count`` threads on ``target(index, barrier)``; returns what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count, timeout=THREAD_TIMEOUT_S)

    def body(index: int) -> None:
        try:
            target(index, barrier)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(THREAD_TIMEOUT_S)
        assert not t.is_alive(), "a writer thread hung"
    return errors


def test_concurrent_read_modify_write_loses_nothing(store: Store) -> None:
    """Writers in several threads read a value and write it back + 1 inside a transaction.

    Deferred transactions would fail (or lose increments) when two read, then both
    write; BEGIN IMMEDIATE makes them queue on the busy timeout instead.
    """
    with store.transaction() as db:
        alert_id = _new_alert(db)
    threads, rounds = 6, 40

    def work(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        for i in range(rounds):
            with store.transaction() as db:
                (version,) = db.execute("SELECT version FROM alerts WHERE id = ?",
                                        [alert_id]).fetchone()
                db.execute("UPDATE alerts SET version = ? WHERE id = ?", [version + 1, alert_id])
                alert_store.add_event(db, alert_id, "note", NOW, actor=f"U{index}X", n=i)

    assert _run_threads(threads, work) == []
    db = store.db
    events = db.execute("SELECT count(*) FROM alert_events WHERE alert_id = ?",
                        [alert_id]).fetchone()[0]
    version = db.execute("SELECT version FROM alerts WHERE id = ?", [alert_id]).fetchone()[0]
    assert events == threads * rounds
    # each round bumps twice: once by hand, once in add_event
    assert version == 1 + 2 * threads * rounds


def test_concurrent_ingest_from_threads_stores_every_result(store: Store) -> None:
    shas = [f"{i:040x}" for i in range(1, 11)]
    ingestor = Ingestor(store, [Route()], lambda: NOW)
    ingestor.commits(REPO, BRANCH, [Commit(s, time=NOW) for s in shas])
    threads = 4

    def work(index: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        for n, sha in enumerate(shas):
            name = f"cuda12.8 / test (inductor_t{index}, 1, 1, linux.g5)"
            ingestor.result(result(10_000 * (index + 1) + n, sha, "success", name=name))

    assert _run_threads(threads, work) == []
    db = store.db
    assert db.execute("SELECT count(*) FROM job_results").fetchone()[0] == threads * len(shas)
    assert db.execute("SELECT count(*) FROM cells WHERE status = 'success'").fetchone()[0] == (
        threads * len(shas))


# --- raw facts and trunk order ------------------------------------------------------------------


def test_same_result_twice_changes_nothing(store: Store) -> None:
    with store.transaction() as db:
        history.place_commits(db, REPO, BRANCH, [Commit("a" * 40)], now=NOW)
        assert results_store.record_result(db, result(1, "a" * 40, "failure"), KEY)
    conn = store.db.conn
    before = conn.total_changes
    with store.transaction() as db:
        assert not results_store.record_result(db, result(1, "a" * 40, "failure"), KEY)
    assert conn.total_changes == before


def test_earlier_status_never_replaces_a_later_one(store: Store) -> None:
    with store.transaction() as db:
        results_store.record_result(db, result(1, "a" * 40, "failure"), KEY)
        assert not results_store.record_result(
            db, result(1, "a" * 40, None, status="in_progress"), KEY)
        row = db.execute("SELECT status, conclusion FROM job_results").fetchone()
    assert row == ("completed", "failure")


def test_cells_can_be_recomputed_from_raw_results(store: Store) -> None:
    shas = [f"{i:040x}" for i in range(1, 6)]
    conclusions = ["success", "failure", "cancelled", "failure", "success"]
    with store.transaction() as db:
        history.place_commits(db, REPO, BRANCH, [Commit(s) for s in shas], now=NOW)
        for n, (sha, conclusion) in enumerate(zip(shas, conclusions, strict=True)):
            results_store.record_result(db, result(n + 1, sha, conclusion), KEY)
            history.refresh_cell(db, REPO, BRANCH, KEY, sha)
    query = "SELECT job_key, sha, position, status FROM cells ORDER BY position"
    before = store.db.execute(query).fetchall()
    assert [row[3] for row in before] == ["success", "failure", "none", "failure", "success"]
    with store.transaction() as db:
        db.execute("DELETE FROM cell_rows")
        for key, sha in db.execute("SELECT DISTINCT job_key, sha FROM job_results").fetchall():
            history.refresh_cell(db, REPO, BRANCH, key, sha)
    assert store.db.execute(query).fetchall() == before


def test_results_for_an_unknown_commit_wait_for_its_push(store: Store) -> None:
    with store.transaction() as db:
        results_store.record_result(db, result(1, "b" * 40, "failure"), KEY)
        assert not history.refresh_cell(db, REPO, BRANCH, KEY, "b" * 40)
        history.place_commits(db, REPO, BRANCH, [Commit("b" * 40)], now=NOW)
        assert history.refresh_cell(db, REPO, BRANCH, KEY, "b" * 40)
    assert [c.status.value for c in history.cell_rows(store.db, REPO, BRANCH, KEY)] == [
        "failure"]


def test_commits_keep_trunk_order_when_learnt_out_of_order(store: Store) -> None:
    c = [Commit(f"{i:040x}", time=NOW + timedelta(minutes=i)) for i in range(8)]
    with store.transaction() as db:
        history.place_commits(db, REPO, BRANCH, c[3:5], now=NOW)  # a push: 3, 4
        history.place_commits(db, REPO, BRANCH, c[6:8], after=c[5].sha, now=NOW)  # 6, 7
        history.place_commits(db, REPO, BRANCH, c[4:7], now=NOW)  # anchored: 5 slots in
        history.place_commits(db, REPO, BRANCH, c[0:3], now=NOW)  # an older page
    assert positions(store.db) == [x.sha for x in c]


def test_renumbering_a_full_gap_keeps_order_and_cells(store: Store) -> None:
    """Slotting many commits between two neighbours eventually renumbers history."""
    low, high = Commit("1" * 40), Commit("2" * 40)
    with store.transaction() as db:
        history.place_commits(db, REPO, BRANCH, [low, high], now=NOW)
        results_store.record_result(db, result(1, high.sha, "failure"), KEY)
        history.refresh_cell(db, REPO, BRANCH, KEY, high.sha)
        expected = [low.sha, high.sha]
        newest_inserted = high
        for i in range(40):  # each insert halves the gap: more than log2(GAP) inserts
            new = Commit(f"{i + 10:040x}")
            history.place_commits(db, REPO, BRANCH, [low, new, newest_inserted], now=NOW)
            expected.insert(1, new.sha)
            newest_inserted = new
    assert positions(store.db) == expected
    (cell,) = history.cell_rows(store.db, REPO, BRANCH, KEY)
    placed = history.get_commit(store.db, REPO, BRANCH, high.sha)
    assert placed is not None and cell.position == placed.position


def test_a_failing_nested_unit_undoes_only_its_own_writes(store: Store) -> None:
    """Replay wraps many deliveries in one transaction; one bad delivery must not leave
    half its writes behind, nor take the others with it."""
    now = "2025-12-09T00:00:00+00:00"
    insert = ("INSERT INTO deliveries (source, delivery_id, event, received_at, outcome) "
              "VALUES ('test', ?, 'push', ?, 'ok')")
    with store.transaction() as db:
        db.execute(insert, ["kept-before", now])
        with pytest.raises(RuntimeError), store.transaction() as inner:
            inner.execute(insert, ["undone", now])
            raise RuntimeError("bad delivery")
        db.execute(insert, ["kept-after", now])
    ids = {row[0] for row in store.db.execute("SELECT delivery_id FROM deliveries")}
    assert ids == {"kept-before", "kept-after"}


def test_keys_in_alerts_skips_members_a_pass_keeps_apart(store: Store) -> None:
    """A pass added at a position matters only to members between the passes around it:
    not to one that recovered before it, nor to one whose last green is after it."""
    with store.transaction() as db:
        alert_id = _new_alert(db)
        for key, green, recovered, withdrawn in [
                ("wf / recovered at 10", 4, 10, 0), ("wf / still failing", 20, None, 0),
                ("wf / withdrawn", 4, None, 1)]:
            db.execute(
                "INSERT INTO alert_jobs (alert_id, job_key, route, streak, first_failing_sha, "
                "first_failing_pos, newest_failing_sha, newest_failing_pos, last_green_pos, "
                "recovered_pos, recovered, withdrawn, joined_at, reached_pos) "
                "VALUES (?, ?, 'inductor', 3, 'a', ?, 'b', ?, ?, ?, ?, ?, ?, ?)",
                [alert_id, key, green + 1, green + 3, green, recovered,
                 int(recovered is not None), withdrawn, NOW.isoformat(), green + 3])
    recovered, failing = "wf / recovered at 10", "wf / still failing"

    def asked(changes: dict[str, tuple[int, int]]) -> set[str]:
        return alert_store.keys_in_alerts(store.db, changes)

    assert asked({recovered: (5, 9), failing: (21, 30)}) == {recovered, failing}
    assert asked({recovered: (10, 10), failing: (20, 20)}) == {recovered, failing}
    assert asked({recovered: (11, 40)}) == set()  # recovered before the change
    assert asked({recovered: (1, 3)}) == set()  # its last green is after the change
    assert asked({failing: (3, 19)}) == set()
    assert asked({"wf / withdrawn": (5, 6), "wf / never alerted": (1, 100)}) == set()
    assert asked({}) == set()


def test_reading_runs_of_names_never_stored_writes_nothing(store: Store) -> None:
    """Readers ask for repositories and jobs that may never have run: they must not
    intern them (outside a transaction, an insert would leave one open, holding the
    write lock against every writer)."""
    with store.transaction() as db:
        results_store.record_result(db, result(1, "1" * 40, "failure"), KEY)
    strings = store.db.execute("SELECT count(*) FROM ci_strings").fetchone()[0]
    assert results_store.results_at(store.db, REPO, ["1" * 40], ["wf / never ran"]) == {}
    assert results_store.results_at(store.db, "someone/else", ["1" * 40]) == {}
    assert results_store.job_keys_at(store.db, "someone/else", ["1" * 40]) == {}
    assert not store.db.conn.in_transaction
    assert store.db.execute("SELECT count(*) FROM ci_strings").fetchone()[0] == strings
    assert results_store.results_for_cell(store.db, REPO, KEY, "1" * 40)  # known: found
