"""Recurring operations on a day of history and on a year of it: every cost must stay flat.

Builds two databases through the bot's own ingest (the same generator as
``bench/memory.py``): a small one (about a day of trunk) and a large one (at least a
million results), then adds settled alerts with their timelines and Slack records as a
long-running bot would have them (3,000 by default on the large one), and a few open
alerts, one snoozed until a commit. Then it times what the running bot does again and
again, on both: an idle sender pass, ``/healthz``, ``/inductor list``, the App Home, a
reminders tick and one webhook stored. Each figure is the median of several runs; the
webhook is also given as the 99th percentile of 500 (the live target is a p99 below 10 ms).

    .venv/bin/python bench/history.py [--small-commits 96] [--large-commits 23000]
                                      [--settled 3000] [--json]

With ``--json`` the last line is ``{"operations": [{"name", "small_s", "large_s",
"small_size", "large_size"}, ...]}``; a cost is flat when large_s <= 2 x small_s or the
two are within 5 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path
                             if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import timedelta  # noqa: E402
from typing import Any  # noqa: E402

from bench.memory import (  # noqa: E402
    PERIODIC_CONFIGS,
    PUSH_CONFIGS,
    REPO,
    SPACING,
    START,
    Clock,
    History,
    db_mb,
    names,
)
from bot.config import Settings  # noqa: E402
from bot.domain.route import Route  # noqa: E402
from bot.runtime import Bot  # noqa: E402
from bot.slack.command_text import Command, parse_command  # noqa: E402
from bot.slack.home import publish_home  # noqa: E402
from bot.slack.listeners.commands import answer  # noqa: E402
from bot.store.codec import to_iso  # noqa: E402
from bot.store.db import Store  # noqa: E402
from bot.web.github import GitHubWebhook  # noqa: E402

CHANNEL = "C0BENCH"
EVENTS_PER_ALERT = 60
REPEATS = 15
OPERATIONS = ("sender_idle_pass", "healthz", "slash_list", "app_home", "reminders_tick",
              "webhook_ingest", "webhook_ingest_p99")
WEBHOOKS_FOR_P99 = 500


def build(path: Path, commits: int, settled: int, seed: int = 7) -> tuple[History, int]:
    """Ingest ``commits`` of trunk, then add ``settled`` finished alerts; returns results."""
    store = Store(path)
    store.migrate()
    history = History(names("inductor", PUSH_CONFIGS, 40),
                      names("inductor-periodic", PERIODIC_CONFIGS, 60), seed)
    bot = Bot(Settings(database_path=str(path), slack_channel=CHANNEL,
                       routes=(Route(channel=CHANNEL),)), clock=Clock())
    bot.slack_api = bot.sender.api = QuietSlack()
    clock: Clock = bot.clock  # type: ignore[assignment]
    results = 0
    for first in range(0, commits, 5):
        last = min(commits, first + 5)
        clock.now = START + SPACING * last + timedelta(hours=1)
        bot.ingestor.commits(REPO, "main", [history.commit(i) for i in range(first, last)])
        batch = [r for i in range(first, last) for r in history.results(i)]
        bot.ingestor.results(batch)
        results += len(batch)
    settle_everything(store, clock.now)
    add_settled_alerts(store, settled, clock.now)
    open_a_few(store, history, commits, clock.now)
    bot.store.close()
    store.close()
    return history, results


def settle_everything(store: Store, now: Any) -> None:
    """What a sender that kept up would have left: every parent and reply delivered."""
    with store.transaction() as db:
        db.execute("INSERT OR IGNORE INTO slack_parents (alert_id, channel) "
                   "SELECT id, ? FROM alerts", [CHANNEL])
        db.execute("UPDATE slack_parents SET ts = printf('%d.000100', 1700000000 + alert_id), "
                   "rendered_version = (SELECT version FROM alerts WHERE id = alert_id), "
                   "posted_at = ?", [to_iso(now)])
        db.execute("INSERT OR IGNORE INTO slack_replies (event_id, alert_id, state, ts, done_at) "
                   "SELECT id, alert_id, 'sent', printf('%d.000200', 1700000000 + id), ? "
                   "FROM alert_events", [to_iso(now)])
        db.execute("DELETE FROM outbox_parents")
        db.execute("DELETE FROM outbox_events")


def add_settled_alerts(store: Store, count: int, now: Any) -> None:
    """Alerts resolved long ago, each with a timeline, its parent and thread replies sent."""
    with store.transaction() as db:
        first_id = db.execute("SELECT coalesce(max(id), 0) + 1 FROM alerts").fetchone()[0]
        opened = to_iso(now - timedelta(days=200))
        db.conn.executemany(
            "INSERT INTO alerts (id, route, repo, branch, team, priority, title, state, "
            "opened_at, resolved_at, resolve_reason, version) VALUES "
            "(?, 'inductor', ?, 'main', 'broken-inductor', 'P2', ?, 'resolved', ?, ?, "
            "'jobs green again', 9)",
            [(first_id + n, REPO, f"past breakage {n}", opened, opened) for n in range(count)])
        db.conn.executemany(
            "INSERT INTO alert_events (alert_id, kind, actor, at, data) VALUES (?, ?, NULL, ?, "
            "'{\"jobs\": []}')",
            [(first_id + n, "extended" if e else "opened", opened)
             for n in range(count) for e in range(EVENTS_PER_ALERT)])
    settle_everything(store, now)


def open_a_few(store: Store, history: History, commits: int, now: Any) -> None:
    """Open alerts the recurring jobs act on; one snoozed until a commit with no results."""
    with store.transaction() as db:
        keys = [r[0] for r in db.execute("SELECT DISTINCT job_key FROM cells LIMIT 5")]
        first, newest = (db.execute("SELECT position FROM commits WHERE sha = ?",
                                    [history.sha(i)]).fetchone()[0]
                         for i in (commits - 3, commits - 1))
        green = db.execute("SELECT position FROM commits WHERE sha = ?",
                           [history.sha(commits - 4)]).fetchone()[0]
        for n, key in enumerate(keys):
            cursor = db.execute(
                "INSERT INTO alerts (route, repo, branch, team, priority, title, state, "
                "opened_at, version, snooze_kind, snooze_sha, snoozed_until) VALUES "
                "('inductor', ?, 'main', 'broken-inductor', 'P2', ?, 'open', ?, 1, ?, ?, NULL)",
                [REPO, f"open breakage {n}", to_iso(now - timedelta(hours=1)),
                 "sha" if n == 0 else None, "0000abc" if n == 0 else None])
            db.execute("INSERT INTO alert_jobs (alert_id, job_key, streak, first_failing_sha, "
                       "first_failing_pos, newest_failing_sha, newest_failing_pos, "
                       "last_green_sha, last_green_pos, joined_at) "
                       "VALUES (?, ?, 3, ?, ?, ?, ?, ?, ?, ?)",
                       [cursor.lastrowid, key, history.sha(commits - 3), first,
                        history.sha(commits - 1), newest, history.sha(commits - 4), green,
                        to_iso(now)])
    settle_everything(store, now)


class QuietSlack:
    """Answers every Web API call like Slack, without printing (the console would)."""

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return {"ok": True, "ts": "1700000000.000100", "messages": [], "user": {}}


def median_s(fn: Callable[[], object], repeats: int = REPEATS) -> float:
    fn()  # warm caches: the bot runs these over and over
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def p99_s(fn: Callable[[], object], runs: int = WEBHOOKS_FOR_P99) -> float:
    """The 99th percentile of ``runs`` calls: the live target is a p99, not a median."""
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.quantiles(times, n=100)[98]


def measure(path: Path, history: History, commits: int) -> dict[str, float]:
    clock = Clock()
    clock.now = START + SPACING * commits + timedelta(hours=2)
    settings = Settings(database_path=str(path), slack_channel=CHANNEL,
                        routes=(Route(channel=CHANNEL),), scheduler_enabled=False,
                        github_webhook_secret="bench")
    bot = Bot(settings, clock=clock)
    bot.slack_api = bot.sender.api = QuietSlack()
    webhook = GitHubWebhook(bot)
    listing = parse_command("/inductor", "list all")
    assert isinstance(listing, Command)
    deliveries = iter(range(10**9))
    reruns = iter(range(10**9))

    def ingest_one() -> None:
        n = next(reruns)
        result = history.rerun(commits - 1, history.push_jobs[n % len(history.push_jobs)])
        webhook._store("workflow_job", f"bench-{next(deliveries)}",
                       replace(result, job_id=result.job_id + 10**9))

    figures = {
        "sender_idle_pass": median_s(bot.sender.run_once),
        "healthz": median_s(bot.health_report),
        "slash_list": median_s(lambda: answer(bot, listing, name="/inductor", text="list all",
                                              user="U1", channel=CHANNEL)),
        "app_home": median_s(lambda: publish_home(bot.store, bot.routes, bot.slack_api,
                                                  clock.now, "U1")),
        "reminders_tick": median_s(bot.run_nudges),
        "webhook_ingest": median_s(ingest_one),
        "webhook_ingest_p99": p99_s(ingest_one),
    }
    bot.lanes.close()
    bot.store.close()
    return figures


def retained(path: Path, commits: int) -> None:
    """The large database after one retention pass with the default settings."""
    clock = Clock()
    clock.now = START + SPACING * commits + timedelta(hours=2)
    bot = Bot(Settings(database_path=str(path), routes=(Route(channel=CHANNEL),)), clock=clock)
    before = db_mb(path)
    started = time.perf_counter()
    while bot.run_retention():  # one pass is bounded; the hourly job would go on next hour
        pass
    took = time.perf_counter() - started
    kept = bot.store.db.execute("SELECT count(*) FROM results").fetchone()[0]
    after = db_mb(path)
    print(f"retention (defaults): {before:.0f} MB -> {after:.0f} MB in {took:.0f} s; "
          f"{kept:,} results kept, {after * 2**20 / max(kept, 1):.0f} B per kept result",
          flush=True)
    bot.lanes.close()
    bot.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small-commits", type=int, default=96, help="about a day of trunk")
    parser.add_argument("--large-commits", type=int, default=23_000,
                        help="~45 results a commit: 23,000 commits pass a million results")
    parser.add_argument("--settled", type=int, default=3000,
                        help="settled alerts with timelines in the large history")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sizes: dict[str, tuple[int, int, float, dict[str, float]]] = {}
        for label, commits, settled in (("small", args.small_commits, 10),
                                        ("large", args.large_commits, args.settled)):
            path = Path(tmp) / f"{label}.db"
            started = time.perf_counter()
            history, results = build(path, commits, settled)
            built = time.perf_counter() - started
            figures = measure(path, history, commits)
            sizes[label] = (commits, results, db_mb(path), figures)
            print(f"{label}: {commits:,} commits, {results:,} results, {settled:,} settled "
                  f"alerts, {db_mb(path):.0f} MB, built in {built:.0f} s", flush=True)
            if label == "large":
                retained(path, commits)
        small, large = sizes["small"], sizes["large"]
        header = f"{'operation':<18} {'small ms':>9} {'large ms':>9} {'ratio':>6}  flat"
        print(header)
        print("-" * len(header))
        for name in OPERATIONS:
            s, big = small[3][name], large[3][name]
            flat = big <= 2 * s or big - s <= 0.005
            print(f"{name:<18} {s * 1000:>9.2f} {big * 1000:>9.2f} {big / s:>6.2f}  "
                  f"{'yes' if flat else 'NO'}")
            rows.append({"name": name, "small_s": round(s, 6), "large_s": round(big, 6),
                         "small_size": small[1], "large_size": large[1]})
    if args.json:
        print(json.dumps({"operations": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
