"""#13 retention: old ledger rows, results far behind the head and old timelines go; what an
open alert or a running bisect reads stays; the file gives freed pages back."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.domain.model import JobResult
from bot.domain.route import Route
from bot.runtime import Bot
from bot.store import alerts as alert_store
from bot.store import evidence, retention, retries
from bot.store.codec import to_iso
from bot.store.db import Store
from tests.support.alerts import broken_trunk, feed
from tests.support.server import Clock


def bot_with(tmp_path: Path, n: int, first_bad: int, **settings: object) -> tuple[Bot, Clock]:
    store = Store(tmp_path / "bot.db")
    store.migrate()
    store.close()
    clock = Clock()
    bot = Bot(Settings(database_path=str(tmp_path / "bot.db"), routes=(Route(),),
                       **settings), clock=clock)  # type: ignore[arg-type]
    feed(bot, broken_trunk(n, first_bad=first_bad), n - 1, clock)
    return bot, clock


def positions_with_results(bot: Bot) -> list[int]:
    return [r[0] for r in bot.store.db.execute(
        "SELECT DISTINCT c.position FROM job_results r JOIN commits c ON c.sha = r.sha "
        "ORDER BY 1")]


def test_results_far_behind_the_head_go_unless_an_open_alert_reaches_back(
        tmp_path: Path) -> None:
    bot, clock = bot_with(tmp_path, 60, first_bad=54, retention_commits=20)
    [alert] = bot.store.db.execute("SELECT id FROM alerts WHERE state != 'resolved'").fetchall()
    kept = [r[0] for r in bot.store.db.execute(
        "SELECT position FROM commits ORDER BY position DESC LIMIT 20")]
    shas = [r[0] for r in bot.store.db.execute("SELECT sha FROM commits")]
    bot.ingestor.changed_files("pytorch/pytorch", [(sha, ("a.py",), "") for sha in shas], "push")
    oldest = bot.store.db.execute("SELECT sha FROM commits ORDER BY position LIMIT 1").fetchone()
    with bot.store.transaction() as db:  # an old failure whose log is still queued
        evidence.want_log(db, JobResult(repo="pytorch/pytorch", sha=oldest[0], workflow="inductor",
                                        job_name="test (x)", job_id=1, status="completed",
                                        conclusion="failure"), "inductor / test (x)", clock())
    evidence_before = bot.store.db.execute("SELECT count(*) FROM job_evidence").fetchone()[0]
    commits_before = bot.store.db.execute("SELECT count(*) FROM commits").fetchone()[0]
    pruned = bot.run_retention(clock())
    assert pruned.rows["job_results"] > 0 and pruned.rows["cells"] > 0
    assert min(positions_with_results(bot)) == min(kept)  # the newest 20 commits keep theirs
    assert bot.store.db.execute("SELECT min(position) FROM cells").fetchone()[0] == min(kept)
    assert bot.store.db.execute("SELECT count(*) FROM commits").fetchone()[0] == commits_before
    # failure evidence and commit files go with the results they explain
    assert pruned.rows["commit_files"] == 40
    evidence_left = [r[0] for r in bot.store.db.execute(
        "SELECT DISTINCT c.position FROM job_evidence e JOIN commits c ON c.sha = e.sha")]
    assert evidence_left and min(evidence_left) >= min(kept)
    assert pruned.rows["job_evidence"] == 1 == evidence_before - bot.store.db.execute(
        "SELECT count(*) FROM job_evidence").fetchone()[0]
    # the open alert still reads its whole range and goes on as before
    assert alert_store.head(bot.store.db, alert[0]).state == "open"  # type: ignore[union-attr]
    assert not bot.run_retention(clock()), "a second pass found more to delete"


def test_retries_go_with_the_results_they_reran(tmp_path: Path) -> None:
    bot, clock = bot_with(tmp_path, 60, first_bad=54, retention_commits=20)
    db = bot.store.db
    [(alert_id,)] = db.execute("SELECT id FROM alerts WHERE state != 'resolved'").fetchall()
    oldest, newest = (db.execute(f"SELECT sha FROM commits ORDER BY position {order} LIMIT 1")
                      .fetchone()[0] for order in ("", "DESC"))
    runs = [JobResult(repo="pytorch/pytorch", sha=sha, workflow="inductor",
                      job_name=f"test (x, {n}, 2)", job_id=100 + i * 2 + n, status="completed",
                      conclusion="failure", run_id=7, attempt=1)
            for i, sha in enumerate((oldest, newest)) for n in (1, 2)]
    with bot.store.transaction() as tx:
        retries.plan(tx, alert_id, runs, {r.job_id: "inductor / test (x)" for r in runs},
                     "U1", clock())
        tx.execute("UPDATE job_retries SET state = 'done', outcome = 'failed' WHERE sha = ?",
                   [oldest])
    pruned = bot.run_retention(clock())
    assert pruned.rows["job_retries"] == 2
    assert {r.sha for r in retries.of_alert(db, alert_id)} == {newest}
    assert not bot.run_retention(clock()), "a second pass found more to delete"


def test_an_open_alert_keeps_the_history_its_range_needs(tmp_path: Path) -> None:
    bot, clock = bot_with(tmp_path, 60, first_bad=10, retention_commits=20)
    [(last_green,)] = bot.store.db.execute(
        "SELECT min(last_green_pos) FROM alert_jobs j JOIN alerts a ON a.id = j.alert_id "
        "WHERE a.state != 'resolved'").fetchall()
    bot.run_retention(clock())
    assert min(positions_with_results(bot)) == last_green


def test_old_deliveries_and_old_timelines_go_and_the_file_shrinks(tmp_path: Path) -> None:
    bot, clock = bot_with(tmp_path, 30, first_bad=24)
    now = clock()
    db = bot.store.db
    with bot.store.transaction() as tx:
        tx.conn.executemany(
            "INSERT INTO deliveries (source, delivery_id, event, received_at, outcome) "
            "VALUES ('github', ?, 'push', ?, 'stored')",
            [(f"old-{i}", to_iso(now - timedelta(days=30))) for i in range(3000)]
            + [("fresh", to_iso(now - timedelta(days=1)))])
        [(alert_id,)] = tx.execute("SELECT id FROM alerts").fetchall()
        for i in range(40):
            alert_store.add_event(tx, alert_id, "extended", now - timedelta(days=200),
                                  padding="x" * 2000, n=i)
        alert_store.resolve(tx, alert_id, now - timedelta(days=100), reason="fixed")
        tx.execute("INSERT INTO slack_replies (event_id, alert_id, state, done_at) "
                   "SELECT id, alert_id, 'sent', ? FROM alert_events", [to_iso(now)])
    events_before = db.execute("SELECT count(*) FROM alert_events").fetchone()[0]
    pruned = bot.run_retention(now)
    assert db.execute("SELECT delivery_id FROM deliveries").fetchall() == [("fresh",)]
    assert pruned.rows["deliveries"] == 3000
    kept = db.execute("SELECT kind FROM alert_events ORDER BY id").fetchall()
    assert len(kept) == 2 and events_before > 40, (kept, events_before)
    assert db.execute("SELECT count(*) FROM slack_replies").fetchone()[0] == 2
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_recently_resolved_alerts_keep_their_timeline(tmp_path: Path) -> None:
    bot, clock = bot_with(tmp_path, 30, first_bad=24)
    now = clock()
    with bot.store.transaction() as tx:
        [(alert_id,)] = tx.execute("SELECT id FROM alerts").fetchall()
        for i in range(5):
            alert_store.add_event(tx, alert_id, "extended", now, n=i)
        alert_store.resolve(tx, alert_id, now - timedelta(days=1), reason="fixed")
    before = bot.store.db.execute("SELECT count(*) FROM alert_events").fetchone()[0]
    bot.run_retention(now)
    assert bot.store.db.execute("SELECT count(*) FROM alert_events").fetchone()[0] == before


def test_policy_defaults_are_documented() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for setting in ("RETENTION_DELIVERIES_DAYS", "RETENTION_COMMITS", "RETENTION_RESOLVED_DAYS"):
        assert setting in readme
    assert retention.Policy() == retention.Policy(14, 5000, 90)


def test_rows_by_commit_are_deleted_only_from_the_tables_named_for_it(store: Store) -> None:
    """The table name is part of the statement: anything but the three is refused."""
    with pytest.raises(ValueError, match="not a table of commits' rows: alerts"), \
            store.transaction() as db:
        retention.old_rows_by_commit(db, "alerts", "o/r", "main", 10)
