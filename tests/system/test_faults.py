"""#12.2, 3, 7, 8, 9, 13: the real ``serve`` process under resource faults.

Bursts must not grow the database connections; half-sent requests and slow bodies must
not take the sockets or the memory; a database held by another process must not delay
Slack's acknowledgements nor lose a webhook (503 with ``Retry-After``, stored when
redelivered); ``/healthz`` names each condition that stops the bot working; SIGTERM
finishes in-flight work, releases the leases and exits 0.
"""

from __future__ import annotations

import os
import resource
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.fakes.slack_api import FakeSlack
from tests.support.bot_process import BotProcess, bot_process, broken
from tests.support.waiting import wait_until


def fds_of(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@contextmanager
def write_lock(db_path: Path) -> Iterator[None]:
    """Another process's long write transaction on the same file."""
    con = sqlite3.connect(db_path, timeout=10, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


def problems(bot: BotProcess) -> dict[str, str]:
    status, report = bot.health()
    assert (status == 200) == (not report["problems"]), (status, report["problems"])
    return report["problems"]


# --- #12.2 connections ----------------------------------------------------------------------


def test_bursts_do_not_grow_connections_or_descriptors(tmp_path: Path) -> None:
    trunk = broken(40)
    deliveries = trunk.deliveries()
    with bot_process(tmp_path) as bot:
        pid = bot.process.proc.pid  # type: ignore[union-attr]
        for delivery in deliveries[:5]:
            bot.deliver(delivery)
        bot.health()
        baseline = fds_of(pid)
        rest = deliveries[5:]
        with ThreadPoolExecutor(max_workers=40) as burst:
            for start in range(0, len(rest), 40):  # bursts of 40 concurrent webhooks
                statuses = list(burst.map(lambda d: bot.deliver(d).status_code,
                                          rest[start:start + 40]))
                assert set(statuses) <= {200}, statuses
                bot.health()
        _, report = bot.health()
        vitals = report["vitals"]
        # fixed lanes: 4 webhook threads, 8 Slack, 1 health, the sender, the main thread
        assert vitals["db_connections"] <= 16, vitals
        # the clients' keep-alive connections close after uvicorn's idle timeout (5 s)
        wait_until(lambda: fds_of(pid) <= baseline + 6, timeout=20,
                   message=f"descriptors back near {baseline}")
        stored = bot.query("SELECT count(*) FROM deliveries")[0][0]
        assert stored == len(deliveries)


# --- #12.3 slow clients ---------------------------------------------------------------------


def test_half_sent_requests_and_slow_bodies_do_not_starve_real_ones(tmp_path: Path) -> None:
    env = {"HEADER_TIMEOUT": "2", "BODY_TIMEOUT": "3", "MAX_CONNECTIONS": "64",
           "MAX_PENDING_BODY_BYTES": str(2 * 2**20), "MAX_BODY_BYTES": str(4 * 2**20)}
    with bot_process(tmp_path, env=env) as bot:
        pid = bot.process.proc.pid  # type: ignore[union-attr]
        rss_before = rss_mb(pid)
        port = bot.process.port
        idle: list[socket.socket] = []
        for _ in range(300):  # half-sent headers, never finished
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /github/webhook HTTP/1.1\r\nHost: x\r\n")
            idle.append(s)
        slow: list[socket.socket] = []
        for _ in range(30):  # unsigned bodies declared near the cap, sent in part, then stalled
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /github/webhook HTTP/1.1\r\nHost: x\r\nX-GitHub-Event: push\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 3900000\r\n\r\n"
                      + b" " * 200_000)
            slow.append(s)
        try:
            started = time.monotonic()
            answer = bot.deliver(broken().push_delivery(0, 0))  # a real delivery gets through
            assert answer.status_code == 200, answer.text
            assert time.monotonic() - started < 5
            assert bot.health()[0] in (200, 503)
            assert rss_mb(pid) < rss_before + 150, (rss_before, rss_mb(pid))
            # the slow ones are cut off: refused (budget) or timed out, never held forever
            answers = []
            for s in slow:
                s.settimeout(10)
                try:
                    answers.append(s.recv(200).split(b"\r\n")[0])
                except OSError:
                    answers.append(b"closed")
            assert all(a.split(b" ")[1:2] in ([b"503"], [b"408"], []) for a in answers), answers
            assert any(b"503" in a for a in answers), "the body budget never refused"
            wait_until(lambda: fds_of(pid) < 100, timeout=15,
                       message="the idle connections to be closed")
        finally:
            for s in idle + slow:
                s.close()


# --- #12.7 a locked database ----------------------------------------------------------------


def test_a_held_database_neither_delays_slack_nor_loses_webhooks(tmp_path: Path) -> None:
    trunk = broken()
    deliveries = trunk.deliveries()
    env = {"WEBHOOK_STORE_TIMEOUT": "1.5"}
    with FakeSlack() as slack, bot_process(tmp_path, slack, env=env) as bot:
        answers: dict[int, httpx.Response] = {}
        with write_lock(bot.db_path), ThreadPoolExecutor(max_workers=20) as pool:
            futures = {i: pool.submit(bot.deliver, d, f"held-{i}")
                       for i, d in enumerate(deliveries)}
            time.sleep(0.5)  # the webhooks are now all waiting on the lock
            started = time.monotonic()
            _, ack = bot.command("list", "during-lock")
            acked_in = time.monotonic() - started
            slack.wait_for(lambda: slack.responses("during-lock"), timeout=10)
            answers = {i: f.result() for i, f in futures.items()}
            held_for = time.monotonic() - started
        assert ack.status_code == 200 and acked_in < 3, acked_in
        assert held_for >= 1.5  # the lock really was held while they were answered
        statuses = {a.status_code for a in answers.values()}
        assert statuses <= {200, 503}, statuses
        refused = [i for i, a in answers.items() if a.status_code == 503]
        assert refused, "nothing waited long enough to be refused"
        assert all(int(answers[i].headers["Retry-After"]) > 0 for i in refused)
        assert all("redeliver" in answers[i].json()["error"] for i in refused)
        for i in sorted(refused):  # GitHub's redelivery of what it saw fail
            assert bot.deliver(deliveries[i], f"held-{i}").status_code == 200
        stored = {r[0] for r in bot.query("SELECT delivery_id FROM deliveries")}
        assert stored == {f"held-{i}" for i in range(len(deliveries))}
        bot.wait_for_parent()


# --- #12.8 honest health --------------------------------------------------------------------


def test_health_names_a_full_disk(tmp_path: Path) -> None:
    with bot_process(tmp_path, env={"DISK_FREE_MIN_BYTES": str(2**62)}) as bot:
        assert "disk full" in problems(bot)["disk"]


def test_health_names_a_long_write_lock_and_recovers(tmp_path: Path) -> None:
    with bot_process(tmp_path, env={"DB_LOCK_ALARM": "1"}) as bot:
        assert problems(bot) == {}
        with write_lock(bot.db_path):
            wait_until(lambda: "database" in problems(bot), timeout=10,
                       message="the lock to be reported")
            assert "write lock" in problems(bot)["database"]
        assert problems(bot) == {}


def test_health_names_a_poller_failing_every_tick(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # nothing listens here once closed
    env = {"SCHEDULER_ENABLED": "true", "HUD_URL": f"http://127.0.0.1:{port}",
           "HUD_POLL_INTERVAL": "1"}
    with bot_process(tmp_path, env=env) as bot:
        wait_until(lambda: "hud-poller" in problems(bot), timeout=20,
                   message="the failing poller to be reported")
        assert "3 times in a row" in problems(bot)["hud-poller"]


def test_health_names_a_stuck_sender(tmp_path: Path) -> None:
    env = {"SENDER_STUCK_AFTER": "1", "SLACK_TIMEOUT": "20"}
    with FakeSlack() as slack, bot_process(tmp_path, slack, env=env) as bot:
        slack.fail_next("chat.postMessage", delay=8)
        bot.feed(broken())
        wait_until(lambda: "sender" in problems(bot), timeout=10,
                   message="the stuck sender to be reported")
        assert "no progress" in problems(bot)["sender"]
        bot.wait_for_parent()
        wait_until(lambda: "sender" not in problems(bot), timeout=10, message="recovery")


def test_health_names_descriptors_running_out(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        bot = BotProcess(tmp_path, slack, env={"MAX_CONNECTIONS": "90"})  # the cap is not hit
        bot.process.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (96, 96))
        bot.start()
        try:
            conns = []
            for _ in range(60):  # idle keep-alive clients: each holds a descriptor
                c = socket.create_connection(("127.0.0.1", bot.process.port))
                c.sendall(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
                conns.append(c)
            wait_until(lambda: "fds" in problems(bot), timeout=10,
                       message=f"descriptors in use to be reported: {bot.health()[1]['vitals']}")
            assert "of 96 file descriptors" in problems(bot)["fds"]
            for c in conns:
                c.close()
            wait_until(lambda: "fds" not in problems(bot), timeout=15, message="recovery")
        finally:
            bot.stop()


def _chattr(flag: str, *paths: Path) -> bool:
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


def test_health_names_a_read_only_database_and_writes_recover_after_the_fix(
        tmp_path: Path) -> None:
    with FakeSlack() as slack, bot_process(tmp_path, slack) as bot:
        files = [bot.db_path, Path(f"{bot.db_path}-wal")]
        if os.getuid() == 0:  # root writes whatever the mode: make the files immutable
            if not _chattr("+i", *files):
                pytest.skip("chattr +i is not available here")
            undo = lambda: _chattr("-i", *files)  # noqa: E731
        else:
            for f in files:
                f.chmod(0o444)
            undo = lambda: [f.chmod(0o644) for f in files]  # noqa: E731
        try:
            wait_until(lambda: "database" in problems(bot), timeout=10,
                       message="the read-only file to be reported")
            assert "read-only" in problems(bot)["database"]
            refused = bot.deliver(broken().push_delivery(0, 3), "while-read-only")
            assert refused.status_code in (200, 503), refused.text
        finally:
            undo()
        wait_until(lambda: problems(bot) == {}, timeout=10, message="recovery")
        bot.feed(broken())  # every thread writes again, without a restart
        assert bot.deliver(broken().push_delivery(0, 3), "while-read-only").status_code == 200
        bot.wait_for_parent()


# --- #12.9 SIGTERM --------------------------------------------------------------------------


def test_sigterm_finishes_in_flight_work_releases_leases_and_exits_zero(tmp_path: Path) -> None:
    env = {"SCHEDULER_ENABLED": "true", "SHUTDOWN_TIMEOUT": "6", "SLACK_TIMEOUT": "5"}
    with FakeSlack() as slack:
        bot = BotProcess(tmp_path, slack, env=env).start()
        slack.fail_next("chat.postMessage", delay=1.5)  # a post in flight at SIGTERM
        bot.feed(broken())
        slack.wait_for(lambda: slack.calls_to("chat.postMessage"), timeout=10)
        upload = socket.create_connection(("127.0.0.1", bot.process.port))
        upload.sendall(b"POST /github/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                       b"\r\n" + b"{" * 10)  # a half-sent upload
        assert bot.process.proc is not None
        started = time.monotonic()
        bot.process.proc.terminate()
        code = bot.process.proc.wait(timeout=20)
        took = time.monotonic() - started
        upload.close()
        assert code == 0, bot.process.log_tail()
        assert took < 10, took
        assert bot.query("SELECT count(*) FROM leases")[0][0] == 0
        assert bot.query("SELECT count(*) FROM slack_parents WHERE ts IS NOT NULL")[0][0] == 1
        assert "stopped" in bot.process.log_tail()


def test_a_replacement_posts_at_once_after_a_graceful_stop(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        first = BotProcess(tmp_path, slack, env={"SCHEDULER_ENABLED": "true"}).start()
        first.process.stop()
        assert first.process.proc is not None and first.process.proc.returncode == 0
        second = BotProcess(tmp_path, slack, name="second",
                            env={"SCHEDULER_ENABLED": "true"}).start(migrate=False)
        try:
            started = time.monotonic()
            second.feed(broken())
            second.wait_for_parent(timeout=10)
            assert time.monotonic() - started < 10
        finally:
            second.stop()
