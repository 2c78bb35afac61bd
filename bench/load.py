"""Load on loopback: signed webhooks at a fixed rate, with slash commands and clicks alongside.

The bot runs as ``python -m bot serve`` in a child process against a fake Slack in this
process that answers 429 to posts faster than one per second per channel, as Slack does.
A bounded asyncio load generator sends a synthetic trunk's GitHub deliveries (pushes, and
each commit's ~150 job results a few commits later, with real breakages that open and
resolve alerts on three routes) at ``--rate`` per second for ``--seconds``, while
``/inductor list`` commands and Ack clicks arrive twice and once a second.

Reported: requests and statuses, deliveries stored against sent, webhook response times,
the time from the webhook whose ingest opened an alert to that alert's parent message in
Slack (p50/p99), and the slash commands' acknowledgement and answer times.

    .venv/bin/python bench/load.py [--rate 300] [--seconds 60] [--json]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, bench/ comes first on sys.path and bench/bisect.py would shadow the
# standard library's bisect: put the repository root there instead.
ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [str(ROOT)] + [p for p in sys.path
                             if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from contextlib import closing  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.support.serve_process import ServeProcess  # noqa: E402
from tests.support.signing import (  # noqa: E402
    block_action_body,
    github_request,
    slack_headers,
    slash_command_body,
)
from tests.support.slack_invariants import assert_delivered_once  # noqa: E402
from tests.support.trunk import Trunk, sharded  # noqa: E402

GITHUB_SECRET = "load-github-secret"
SIGNING_SECRET = "load-signing-secret"
ROUTES = {"inductor": "C0LOAD1", "inductor-periodic": "C0LOAD2", "inductor-rocm": "C0LOAD3"}
CONFIGS = {
    "inductor": [("inductor_huggingface", 5), ("inductor_timm", 6), ("inductor_torchbench", 6),
                 ("dynamic_inductor_huggingface", 5), ("dynamic_inductor_timm", 6),
                 ("dynamic_inductor_torchbench", 6), ("aot_inductor_huggingface", 5),
                 ("aot_inductor_timm", 6), ("aot_inductor_torchbench", 6),
                 ("inductor_cpp_wrapper", 3), ("inductor_distributed", 2),
                 ("cpu_inductor_huggingface", 5), ("cpu_inductor_timm", 6),
                 ("cpu_inductor_torchbench", 6), ("inductor_max_autotune", 5)],
    "inductor-periodic": [("dynamo_eager_huggingface", 5), ("dynamo_eager_timm", 6),
                          ("aot_eager_torchbench", 6), ("cudagraphs_huggingface", 5),
                          ("cudagraphs_timm", 6), ("cudagraphs_torchbench", 6)],
    "inductor-rocm": [("inductor_huggingface", 5), ("inductor_timm", 6),
                      ("inductor_torchbench", 6)],
}
LAG = 3  # a commit's results arrive while the next commits are being pushed
BREAK_EVERY = 6  # a real breakage starts every few commits, on one to three shards
SLOW_S = 3.0  # Slack's deadline for acknowledging a slash command


def job_names() -> list[str]:
    runner = {"inductor-rocm": "linux.rocm.gpu.mi300.2"}
    return [name for workflow, configs in CONFIGS.items() for config, shards in configs
            for name in sharded(workflow, config, shards,
                                runner=runner.get(workflow, "linux.g5.4xlarge.nvidia.gpu"))]


def make_trunk(commits: int, seed: int) -> Trunk:
    rng = random.Random(seed)
    names = job_names()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5 * commits + 90)
    trunk = Trunk.linear(commits, names, salt=f"load{seed}", start=start,
                         spacing=timedelta(minutes=5))
    for first in range(4, commits - 4, BREAK_EVERY):
        for name in rng.sample(names, rng.randint(1, 3)):
            for i in range(first, min(commits, first + rng.randint(4, 14))):
                trunk.set(i, name, "failure", line="FAILED test_models.py::test_accuracy")
    for i in range(commits):
        for name in names:
            if (i, name) not in trunk.runs:
                roll = rng.random()
                trunk.set(i, name, *(["failure", "success"] if roll < 0.01 else ["success"]))
    return trunk


def deliveries(trunk: Trunk, seed: int) -> list[tuple[bytes, dict[str, str]]]:
    """Signed requests in arrival order: push i, then commit i-LAG's results, shuffled."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    n = len(trunk.shas)
    for i in range(n + LAG):
        if i < n:
            out.append(trunk.push_delivery(i, i))
        if i >= LAG:
            batch = [d for name in trunk.job_names for d in trunk.job_deliveries(i - LAG, name)]
            rng.shuffle(batch)
            out.extend(batch)
    return [github_request(d["event"], d["payload"], f"load-{k}", GITHUB_SECRET)
            for k, d in enumerate(out)]


class TimedSlack(FakeSlack):
    """The fake Slack, noting when each ``response_url`` answer arrived."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.answered: dict[str, float] = {}

    def _record_response(self, key: str, body: bytes) -> None:
        self.answered.setdefault(key, time.time())
        super()._record_response(key, body)


class Connection:
    """One keep-alive HTTP/1.1 connection, speaking just enough of the protocol.

    httpx's async pool spends more CPU per request than the server under test does at
    a few hundred requests a second, which would make the generator the bottleneck.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        request = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                   f"Content-Length: {len(body)}\r\n{head}\r\n").encode("latin-1") + body
        try:
            self.writer.write(request)
            await self.writer.drain()
            status = int((await self.reader.readline()).split()[1])
            length, close = 0, False
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
                elif name.strip().lower() == "connection" and "close" in value.lower():
                    close = True
            payload = await self.reader.readexactly(length)
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            self.close()
            raise
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Pool:
    """A fixed number of connections; a request waits for a free one (that wait is counted)."""

    def __init__(self, url: str, size: int) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.free: asyncio.Queue[Connection] = asyncio.Queue()
        for _ in range(size):
            self.free.put_nowait(Connection(host, int(port)))

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        connection = await self.free.get()
        try:
            return await connection.post(path, body, headers)
        finally:
            self.free.put_nowait(connection)


@dataclass
class Tally:
    statuses: Counter[str] = field(default_factory=Counter)
    webhook_s: list[float] = field(default_factory=list)
    accepted: int = 0
    opened_at: dict[int, float] = field(default_factory=dict)  # alert -> deciding send time
    command_ack_s: list[float] = field(default_factory=list)
    command_sent: dict[str, float] = field(default_factory=dict)
    click_ack_s: list[float] = field(default_factory=list)
    command_statuses: Counter[str] = field(default_factory=Counter)
    sent: int = 0


async def run_load(url: str, slack: TimedSlack, requests: list[tuple[bytes, dict[str, str]]],
                   rate: float, seconds: float, tally: Tally) -> float:
    """Open loop: each request is due at its time whatever the server does; times count
    from when it was due, so a slow server shows as slow answers, not a lower rate."""
    hooks, interactive = Pool(url, 64), Pool(url, 8)
    begin = time.monotonic()
    wall = time.time() - begin  # monotonic -> wall clock, to compare with Slack's ts
    tasks: set[asyncio.Task[None]] = set()

    def spawn(coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def webhook(body: bytes, headers: dict[str, str], due: float) -> None:
        try:
            status, payload = await hooks.post("/github/webhook", body, headers)
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
            tally.statuses[type(exc).__name__] += 1
            return
        tally.webhook_s.append(time.monotonic() - due)
        tally.statuses[str(status)] += 1
        if 200 <= status < 300:
            tally.accepted += 1
            for alert in json.loads(payload).get("alerts", []):
                tally.opened_at[alert] = min(tally.opened_at.get(alert, due + wall), due + wall)

    async def slack_post(body: bytes, key: str, due: float, acks: list[float]) -> None:
        tally.command_sent[key] = due + wall
        try:
            status, _ = await interactive.post("/slack/events", body,
                                               slack_headers(SIGNING_SECRET, body))
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError) as exc:
            tally.command_statuses[type(exc).__name__] += 1
            return
        acks.append(time.monotonic() - due)
        tally.command_statuses[str(status)] += 1

    async def command(n: int, due: float) -> None:
        key = f"cmd{n}"
        body = slash_command_body("list", slack.response_url(key), user="U1",
                                  channel=ROUTES["inductor"])
        await slack_post(body, key, due, tally.command_ack_s)

    async def click(n: int, due: float) -> None:
        if not tally.opened_at:
            return
        alert = sorted(tally.opened_at)[n % len(tally.opened_at)]
        body = block_action_body("alert_ack", str(alert), slack.response_url(f"click{n}"),
                                 user=f"U{n % 5 + 1}", channel=ROUTES["inductor"])
        await slack_post(body, f"click{n}", due, tally.click_ack_s)

    webhooks = [begin + i / rate for i in range(min(len(requests), int(seconds * rate)))]
    schedule = ([(due, "webhook", i) for i, due in enumerate(webhooks)]
                + [(begin + n * 0.5, "command", n) for n in range(int(seconds / 0.5))]
                + [(begin + n + 0.25, "click", n) for n in range(int(seconds))])
    tally.sent = len(webhooks)
    for due, kind, n in sorted(schedule):
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        if kind == "webhook":
            spawn(webhook(*requests[n], due))
        else:
            spawn(command(n, due) if kind == "command" else click(n, due))
    elapsed = time.monotonic() - begin
    while tasks:
        await asyncio.gather(*list(tasks))
    return elapsed


def quantiles(values: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max (zeros when there is nothing to measure)."""
    if not values:
        return 0.0, 0.0, 0.0
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return statistics.median(ordered), p99, ordered[-1]


def slack_settled(db: Path) -> bool:
    """Every alert's parent posted and current; replies pending only if held by coalescing."""
    with closing(sqlite3.connect(db, timeout=10)) as con:
        parents = con.execute(
            "SELECT count(*) FROM alerts a LEFT JOIN slack_parents p ON p.alert_id = a.id "
            "WHERE p.ts IS NULL OR p.rendered_version < a.version").fetchone()[0]
        replies = con.execute(
            "SELECT count(*) FROM alert_events e LEFT JOIN slack_replies r ON r.event_id = e.id "
            "WHERE (r.event_id IS NULL OR r.state = 'pending') AND e.kind != 'extended'"
        ).fetchone()[0]
    return parents == 0 and replies == 0


def bot_config(path: Path) -> Path:
    routes = "".join(f'\n[[routes]]\nname = "{w}"\nworkflows = "^{w}$"\nchannel = "{c}"\n'
                     f'team = "{w}"\n' for w, c in ROUTES.items())
    path.write_text('[defaults]\nrepo = "pytorch/pytorch"\nbranch = "main"\n' + routes)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="webhooks per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="also print a JSON summary line")
    args = parser.parse_args(argv)

    jobs = len(job_names())
    commits = int(args.rate * args.seconds / (jobs * 1.01 + 1)) + LAG + 2
    trunk = make_trunk(commits, args.seed)
    requests = deliveries(trunk, args.seed)
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp, TimedSlack(min_post_interval=1.0) as slack:
        workdir = Path(tmp)
        process = ServeProcess({
            "DATABASE_PATH": str(workdir / "bot.db"), "BOT_CONFIG": str(bot_config(
                workdir / "bot.toml")), "SLACK_BOT_TOKEN": "xoxb-load",
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.url + "/api/",
            "SLACK_CHANNEL": ROUTES["inductor"], "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
            "SCHEDULER_ENABLED": "false", "LOG_LEVEL": "WARNING"}, workdir / "serve.log")
        process.migrate()
        process.start()
        try:
            elapsed = asyncio.run(run_load(process.url, slack, requests, args.rate,
                                           args.seconds, tally))
            load_end = time.time()
            drain_deadline = time.monotonic() + 120
            while not slack_settled(workdir / "bot.db") and time.monotonic() < drain_deadline:
                time.sleep(0.1)  # polling the database with a deadline
            drained_s = time.time() - load_end
            with closing(sqlite3.connect(workdir / "bot.db")) as con:
                stored = con.execute("SELECT count(*) FROM deliveries").fetchone()[0]
                results = con.execute("SELECT count(*) FROM job_results").fetchone()[0]
                alerts = con.execute("SELECT count(*) FROM alerts").fetchone()[0]
                try:
                    assert_delivered_once(slack, con, {r: c for r, c in ROUTES.items()})
                    invariants = "one parent per alert, one reply per sent event"
                except AssertionError as exc:
                    invariants = f"VIOLATED: {exc}"
            posted = {m["metadata"]["event_payload"]["alert_id"]: float(m["ts"])
                      for channel in ROUTES.values() for m in slack.messages(channel)
                      if m.get("metadata")}
            rate_limited = sum(1 for c in slack.calls_to("chat.postMessage")) - sum(
                1 + len(slack.replies(ch, m["ts"])) for ch in ROUTES.values()
                for m in slack.messages(ch))
        finally:
            process.stop()
    sent_results = sum(1 for body, headers in requests[:tally.sent]
                       if headers["X-GitHub-Event"] == "workflow_job")
    latencies = [posted[a] - t for a, t in tally.opened_at.items() if a in posted]
    answers = [slack.answered[k] - t for k, t in tally.command_sent.items()
               if k in slack.answered and k.startswith("cmd")]
    five_xx = sum(n for s, n in tally.statuses.items() if s.startswith("5"))
    wh = quantiles(tally.webhook_s)
    lat = quantiles(latencies)
    ack = quantiles(tally.command_ack_s)
    ans = quantiles(answers)
    clk = quantiles(tally.click_ack_s)
    slow = sum(1 for v in tally.command_ack_s + answers if v > SLOW_S)
    print(f"load benchmark: {args.rate:g} webhooks/s for {args.seconds:g} s, {jobs} shard jobs "
          f"per commit on {len(ROUTES)} routes, + /inductor list every 0.5 s and an Ack click "
          f"every 1 s; bot in a child process, fake Slack at 1 post/s/channel")
    rows = [
        ("webhooks sent", f"{tally.sent} in {elapsed:.1f} s ({tally.sent / elapsed:.0f}/s)"),
        ("statuses", ", ".join(f"{k}: {v}" for k, v in sorted(tally.statuses.items()))),
        ("5xx / errors", f"{five_xx} / "
                         f"{sum(n for s, n in tally.statuses.items() if not s.isdigit())}"),
        ("deliveries stored", f"{stored} of {tally.accepted} accepted "
                              f"(job results {results} of {sent_results} sent)"),
        ("webhook response", f"p50 {wh[0] * 1000:.0f} ms, p99 {wh[1] * 1000:.0f} ms, "
                             f"max {wh[2] * 1000:.0f} ms"),
        ("alerts opened", f"{alerts}; parents in Slack {len(posted)}; Slack settled "
                          f"{drained_s:.1f} s after the load; {max(0, rate_limited)} posts "
                          "answered 429"),
        ("webhook -> Slack parent", f"p50 {lat[0]:.2f} s, p99 {lat[1]:.2f} s, max {lat[2]:.2f} s "
                                    f"over {len(latencies)} alerts"),
        ("slash command ack", f"p50 {ack[0] * 1000:.0f} ms, p99 {ack[1] * 1000:.0f} ms, "
                              f"max {ack[2] * 1000:.0f} ms ({len(tally.command_ack_s)} commands)"),
        ("slash command answer", f"p50 {ans[0] * 1000:.0f} ms, p99 {ans[1] * 1000:.0f} ms, "
                                 f"max {ans[2] * 1000:.0f} ms; over {SLOW_S:g} s: {slow}"),
        ("Ack click ack", f"p50 {clk[0] * 1000:.0f} ms, p99 {clk[1] * 1000:.0f} ms, "
                          f"max {clk[2] * 1000:.0f} ms ({len(tally.click_ack_s)} clicks)"),
        ("command statuses", ", ".join(f"{k}: {v}"
                                       for k, v in sorted(tally.command_statuses.items()))),
        ("Slack invariants", invariants),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        print("JSON " + json.dumps({
            "rate": args.rate, "seconds": args.seconds, "sent": tally.sent,
            "achieved_per_s": round(tally.sent / elapsed), "five_xx": five_xx,
            "stored": stored, "accepted": tally.accepted, "alerts": alerts,
            "parents": len(posted), "webhook_p50_ms": round(wh[0] * 1000),
            "webhook_p99_ms": round(wh[1] * 1000), "to_slack_p50_s": round(lat[0], 2),
            "to_slack_p99_s": round(lat[1], 2), "command_ack_p99_ms": round(ack[1] * 1000),
            "command_ack_max_ms": round(ack[2] * 1000),
            "command_answer_p99_ms": round(ans[1] * 1000),
            "command_answer_max_ms": round(ans[2] * 1000), "over_3s": slow,
            "invariants": invariants}))
    return 0 if five_xx == 0 and stored == tally.accepted and slow == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
