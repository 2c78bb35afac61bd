"""Crash safety: a realistic incident over HTTP into ``python -m bot serve``, killed with SIGKILL.

The bot runs as a child process against a fake Slack in this process. Seeded kills
land during ingest (a delivery in flight), between a Slack post and its record (the
fake has stored the post and holds the answer), and at every phase of a bisect; the
bot is restarted each time and deliveries without a 2xx answer are redelivered, as
GitHub does. The end state must equal a run without kills: each result stored once,
the same alerts, one parent per alert and one thread reply per event in Slack.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.fakes.slack_api import FakeSlack
from tests.support.serve_process import ServeProcess
from tests.support.signing import github_request, slack_headers, slash_command_body
from tests.support.slack_invariants import assert_delivered_once, outbox_empty
from tests.support.trunk import Trunk, sharded
from tests.support.waiting import wait_until

SEED = int(os.environ.get("CRASH_SEED", "20261121"))
GITHUB_SECRET = "crash-github-secret"
SIGNING_SECRET = "crash-signing-secret"
CHANNELS = {"inductor": "C0CRASH1", "periodic": "C0CRASH2"}
HF = sharded("inductor", "inductor_huggingface", 2)
TIMM = sharded("inductor", "inductor_timm", 1)
TORCHBENCH = sharded("inductor-periodic", "inductor_torchbench", 1)
N = 14
CULPRIT = 5  # the commit that broke the periodic torchbench job (it only ran at 1, 9, 11, 13)
DRAIN_TIMEOUT_S = 60.0


# --- the incident ---------------------------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def checkout(path: Path) -> list[str]:
    """A real repository whose commits are the trunk's, so a local bisect can test them."""
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "dev")
    shas = []
    for i in range(N):
        (path / "n").write_text(f"{i}\n")
        if i == CULPRIT:
            (path / "broken").write_text("the change that broke torchbench\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"Change number {i}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


def incident(shas: list[str]) -> Trunk:
    """Two incidents on two routes, with a flaky rerun and a recovery.

    ``inductor``: huggingface shard 2 fails at 5..10, timm at 5..10 (joins), both pass
    again from 11 (resolved). ``periodic``: torchbench runs at 1, 9, 11, 13 only, passes
    at 1 and fails after: 8 suspects, the culprit planted at ``CULPRIT``.
    """
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=8)
    trunk = Trunk.linear(N, HF + TIMM + TORCHBENCH, start=start)
    trunk.shas = list(shas)
    for i in range(N):
        trunk.set(i, HF[0], "failure", "success") if i == 3 else trunk.set(i, HF[0], "success")
        trunk.set(i, HF[1], "failure" if 5 <= i <= 10 else "success", line="RuntimeError: CUDA")
        if i != 4:  # timm did not run at 4: its range (3, 5] holds huggingface's (4, 5]
            trunk.set(i, TIMM[0], "failure" if 5 <= i <= 10 else "success",
                      line="AssertionError: accuracy")
    trunk.set(1, TORCHBENCH[0], "success")
    for i in (9, 11, 13):
        trunk.set(i, TORCHBENCH[0], "failure", line="torchbench: eager_two_runs_differ")
    return trunk


def bot_config(path: Path, repo: Path) -> Path:
    path.write_text(f"""
[defaults]
repo = "pytorch/pytorch"
branch = "main"

[[routes]]
name = "inductor"
workflows = "^inductor$"
channel = "{CHANNELS['inductor']}"

[[routes]]
name = "periodic"
workflows = "^inductor-periodic$"
team = "inductor-periodic"
channel = "{CHANNELS['periodic']}"

[routes.bisect]
backend = "local"
repo = "{repo}"
command = "sleep 0.2; test ! -e broken"
k = 3
timeout = "60s"
""")
    return path


# --- a fake Slack that can hold an answer ---------------------------------------------------


class HoldingSlack(FakeSlack):
    """Stores an armed post, then holds its answer until released.

    That is the window a crash must survive: Slack has the message, the bot has
    marked the post as started but not yet recorded its ts.
    """

    def __init__(self) -> None:
        super().__init__()
        self._armed: list[str] = []
        self._gates: list[threading.Event] = []
        self.holding = threading.Event()
        self.held: list[str] = []

    def arm(self, kind: str) -> None:
        """Hold the next ``"parent"`` post or thread ``"reply"``."""
        with self._cond:
            self._armed.append(kind)

    def release(self) -> None:
        with self._cond:
            gates, self._gates = self._gates, []
            self.holding.clear()
        for gate in gates:
            gate.set()

    def stop(self) -> None:
        self.release()
        super().stop()

    def _handle(self, method: str, params: dict[str, Any], token: str | None) -> Any:
        answer = super()._handle(method, params, token)
        if method != "chat.postMessage" or not (answer.body or {}).get("ok"):
            return answer
        kind = "reply" if params.get("thread_ts") else "parent"
        gate = threading.Event()
        with self._cond:
            if kind not in self._armed:
                return answer
            self._armed.remove(kind)
            self.held.append(kind)
            self._gates.append(gate)
            self.holding.set()
        gate.wait(30)
        return answer._replace(body=None)  # the bot that asked is dead: nobody to answer


# --- one bot under test ---------------------------------------------------------------------


class Run:
    """A bot process, its database and its fake Slack, fed deliveries over HTTP."""

    def __init__(self, tmp: Path, config: Path, slack: FakeSlack) -> None:
        tmp.mkdir()
        self.db_path = tmp / "bot.db"
        self.slack = slack
        self.kills = 0
        self.process = ServeProcess({
            "DATABASE_PATH": str(self.db_path), "BOT_CONFIG": str(config),
            "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLACK_API_URL": slack.url + "/api/", "SLACK_CHANNEL": CHANNELS["inductor"],
            "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
            # the bisect tick runs on the scheduler (first tick 1 s after start)
            "SCHEDULER_ENABLED": "true",
        }, tmp / "serve.log")
        self.process.migrate()
        self.process.start()
        self.http = httpx.Client(base_url=self.process.url, timeout=15)

    def close(self) -> None:
        self.http.close()
        self.process.stop()

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=10)

    def kill_and_restart(self) -> None:
        self.process.kill()
        self.kills += 1
        self.process.start()

    def try_send(self, index: int, delivery: dict[str, Any]) -> int | None:
        body, headers = github_request(delivery["event"], delivery["payload"],
                                       f"crash-{index}", GITHUB_SECRET)
        try:
            return self.http.post("/github/webhook", content=body, headers=headers).status_code
        except httpx.TransportError:
            return None

    def send(self, index: int, delivery: dict[str, Any]) -> None:
        """Deliver until a 2xx; a dead bot is restarted first, as GitHub would retry later."""
        for _ in range(3):
            status = self.try_send(index, delivery)
            if status is not None and 200 <= status < 300:
                return
            assert status is None, f"delivery {index} answered {status}"  # only a dead bot
            self.kill_and_restart()
        raise AssertionError(f"delivery {index} never accepted:\n{self.process.log_tail()}")

    def send_and_kill(self, index: int, delivery: dict[str, Any], after_s: float) -> None:
        """Kill the bot while ``delivery`` is being processed, restart, redeliver it."""
        sender = threading.Thread(target=self.try_send, args=(index, delivery))
        sender.start()
        time.sleep(after_s)  # a random kill point, not a wait for the thread
        self.process.kill()
        sender.join(15)
        self.kills += 1
        self.process.start()
        self.send(index, delivery)  # GitHub redelivers what it did not see answered

    def kill_if_holding(self) -> bool:
        """If Slack holds a post's answer, kill the bot now: the post exists, its ts is lost."""
        if not isinstance(self.slack, HoldingSlack) or not self.slack.holding.is_set():
            return False
        self.process.kill()
        self.kills += 1
        self.slack.release()
        self.process.start()
        return True

    def parents_recorded(self) -> bool:
        """Every alert's parent is in Slack and its ts recorded."""
        with closing(self.db()) as con:
            return con.execute("SELECT count(*) FROM alerts a LEFT JOIN slack_parents p "
                               "ON p.alert_id = a.id WHERE p.ts IS NULL").fetchone()[0] == 0

    def catch_up(self) -> None:
        """Wait until the sender has posted every alert's parent, killing across a held answer.

        Without it a busy machine lets ingest run ahead of the sender: an alert's parent
        then goes out after all its events and shows them, and no thread reply is ever
        posted for the armed fake to hold.
        """
        try:
            wait_until(lambda: (self.kill_if_holding() and False) or self.parents_recorded(),
                       timeout=DRAIN_TIMEOUT_S, interval=0.05, message="every parent posted")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.process.log_tail()}") from None

    def settled(self) -> bool:
        with closing(self.db()) as con:
            return outbox_empty(con)

    def drain(self) -> None:
        try:
            wait_until(lambda: (self.kill_if_holding() and False) or self.settled(),
                       timeout=DRAIN_TIMEOUT_S, interval=0.1, message="the outbox to drain")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.process.log_tail()}") from None


@contextmanager
def started(tmp: Path, config: Path, slack: FakeSlack) -> Iterator[Run]:
    slack.start()
    run = Run(tmp, config, slack)
    try:
        yield run
    finally:
        run.close()
        slack.stop()


# --- what must hold at the end --------------------------------------------------------------


def snapshot(run: Run) -> dict[str, list[tuple[Any, ...]]]:
    """Everything that must not depend on kills (times and Slack bookkeeping left out)."""
    queries = {
        "results": "SELECT repo, job_id, sha, branch, workflow, job_name, job_key, run_id, "
                   "attempt, status, conclusion, failure_lines FROM job_results "
                   "ORDER BY repo, job_id",
        "deliveries": "SELECT delivery_id, event, outcome, detail FROM deliveries "
                      "ORDER BY delivery_id",
        "commits": "SELECT sha, position FROM commits ORDER BY position",
        "cells": "SELECT job_key, sha, status FROM cells ORDER BY job_key, position",
        "alerts": "SELECT id, route, state, range_last_green, range_first_failing, "
                  "resolved_sha FROM alerts ORDER BY id",
        "members": "SELECT alert_id, job_key, streak, first_failing_sha, newest_failing_sha, "
                   "last_green_sha, recovered, recovered_sha FROM alert_jobs "
                   "ORDER BY alert_id, job_key",
        "events": "SELECT alert_id, kind, data FROM alert_events "
                  "WHERE kind NOT LIKE 'bisect%' ORDER BY id",
    }
    with closing(run.db()) as con:
        found = {name: con.execute(sql).fetchall() for name, sql in queries.items()}
    found["events"] = [(alert, kind, _timeless(data)) for alert, kind, data in found["events"]]
    return found


def _timeless(data: str) -> dict[str, Any]:
    """Event data without wall-clock durations, which differ between any two runs."""
    return {k: v for k, v in json.loads(data).items() if k != "duration_s"}


def check_slack(run: Run) -> dict[int, str]:
    with closing(run.db()) as con:
        return assert_delivered_once(run.slack, con, CHANNELS)


# --- the test -------------------------------------------------------------------------------


def test_sigkill_anywhere_changes_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    repo = tmp_path / "checkout"
    trunk = incident(checkout(repo))
    config = bot_config(tmp_path / "bot.toml", repo)
    deliveries = trunk.deliveries(shuffle_seed=SEED)
    results = {d["payload"]["workflow_job"]["id"] for d in deliveries
               if d["event"] == "workflow_job"}

    with started(tmp_path / "control", config, FakeSlack()) as control:
        for index, delivery in enumerate(deliveries):
            control.send(index, delivery)
        control.drain()
        expected = snapshot(control)
        check_slack(control)
        assert control.kills == 0
    assert len(expected["results"]) == len(results), "every result stored once"
    assert [a[1:3] for a in expected["alerts"]] == [("inductor", "resolved"),
                                                   ("periodic", "open")]

    slack = HoldingSlack()
    slack.arm("parent")
    slack.arm("reply")
    ingest_kills = sorted(rng.sample(range(2, len(deliveries) - 2), 3))
    with started(tmp_path / "crash", config, slack) as crash:
        for index, delivery in enumerate(deliveries):
            if index in ingest_kills:
                crash.send_and_kill(index, delivery, after_s=rng.uniform(0.0, 0.015))
            else:
                crash.send(index, delivery)
            crash.kill_if_holding()
            if "reply" not in slack.held:
                # the next event after a parent is a reply to hold: keep the sender level
                crash.catch_up()
        crash.drain()
        assert slack.held == ["parent", "reply"], "both posts were held and killed across"
        assert crash.kills >= len(ingest_kills) + 2
        assert snapshot(crash) == expected
        check_slack(crash)

        bisect_through_kills(crash, trunk, rng)
        after = snapshot(crash)
        assert {k: after[k] for k in ("results", "alerts", "members", "cells")} == {
            k: expected[k] for k in ("results", "alerts", "members", "cells")}
        check_slack(crash)


# --- during a bisect ------------------------------------------------------------------------


def bisect_state(run: Run) -> tuple[str, str | None, int, int, int]:
    """(state, culprit, round, run probes not done, run probes done)."""
    with closing(run.db()) as con:
        row = con.execute("SELECT state, culprit, round, id FROM bisects").fetchone()
        assert row is not None, "no bisect was recorded"
        pending, done = con.execute(
            "SELECT sum(state != 'done'), sum(state = 'done') FROM bisect_probes "
            "WHERE bisect_id = ? AND source = 'run'", [row[3]]).fetchone()
    return row[0], row[1], row[2], pending or 0, done or 0


def bisect_story(run: Run) -> str:
    """The bisect's outcome and every probe, for a failure message."""
    with closing(run.db()) as con:
        lines = [repr(row) for row in con.execute(
            "SELECT state, round, reason, culprit FROM bisects")]
        lines += [repr(row) for row in con.execute(
            "SELECT round, substr(sha, 1, 10), source, attempt, state, outcome, detail "
            "FROM bisect_probes ORDER BY id")]
    return "\n".join(lines)


def bisect_through_kills(run: Run, trunk: Trunk, rng: random.Random) -> None:
    """Start a bisect from Slack and kill the bot at each of its phases until it ends.

    Kills land right after the start, while probes run, and between rounds; each
    restart's first scheduler tick (1 s after start) resumes the bisect from SQLite.
    """
    with closing(run.db()) as con:
        [alert_id] = con.execute("SELECT id FROM alerts WHERE route = 'periodic'").fetchone()
    body = slash_command_body(f"bisect A{alert_id}", run.slack.response_url("bisect"),
                              channel=CHANNELS["periodic"])
    answer = run.http.post("/slack/events", content=body,
                           headers=slack_headers(SIGNING_SECRET, body))
    assert answer.status_code == 200
    [started_answer] = run.slack.wait_for(lambda: run.slack.responses("bisect"), timeout=10)
    assert "Bisecting" in started_answer["text"], started_answer
    run.kill_and_restart()  # before anything was dispatched

    wait_until(lambda: bisect_state(run)[3] > 0 or bisect_state(run)[0] != "running",
               timeout=20, message="round 1 probes to start")
    time.sleep(rng.uniform(0.0, 0.15))  # a random point while the probes run
    for _ in range(12):
        before = bisect_state(run)  # progress is judged against the state at the kill
        if before[0] != "running":
            break
        run.kill_and_restart()  # mid-probe, then between rounds: each restart's tick resumes
        wait_until(lambda b=before: (s := bisect_state(run))[0] != "running"
                   or (s[3] == 0 and (s[4] > b[4] or s[2] > b[2])),
                   timeout=20, message=f"the bisect to move on from {before}")
    state, culprit, *_ = bisect_state(run)
    assert (state, culprit) == ("found", trunk.shas[CULPRIT]), (
        f"{bisect_story(run)}\n{run.process.log_tail()}")
    run.drain()
    with closing(run.db()) as con:
        repeats = con.execute(
            "SELECT sha, round, count(*) FROM bisect_probes WHERE source = 'run' "
            "GROUP BY sha, round HAVING count(*) > 1").fetchall()
        kinds = Counter(k for (k,) in con.execute(
            "SELECT kind FROM alert_events WHERE alert_id = ?", [alert_id]))
    assert repeats == [], "no probe was planned twice"
    assert kinds["bisect_started"] == 1 and kinds["bisect_found"] == 1, kinds
    parents = check_slack(run)
    thread = run.slack.replies(CHANNELS["periodic"], parents[alert_id])
    assert any(trunk.shas[CULPRIT][:10] in json.dumps(r) for r in thread), "culprit named"
