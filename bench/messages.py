"""Slack messages per incident: realistic incidents through the real pipeline, sender and Slack.

Each incident is a day or so of trunk: a commit every 20 minutes, every job's result
delivered as a ``workflow_job`` webhook payload an hour after its commit, parsed and
ingested as the webhook would, and the Slack sender run to completion after each commit
against the fake Slack (with the bot's clock, so "still failing" replies coalesce per
``extend_interval`` as they would in production). Counted per incident: parent messages,
edits, thread replies, and every Slack call.

    .venv/bin/python bench/messages.py [--json]
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
import json  # noqa: E402
import random  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from bot.config import Settings  # noqa: E402
from bot.domain.route import Route  # noqa: E402
from bot.ingest.github_payloads import parse_push, parse_workflow_job  # noqa: E402
from bot.runtime import Bot  # noqa: E402
from bot.slack.triage import Request  # noqa: E402
from bot.store.db import Store  # noqa: E402
from tests.fakes.slack_api import FakeSlack  # noqa: E402
from tests.support.clock import FakeClock  # noqa: E402
from tests.support.trunk import REPO, Trunk, sharded  # noqa: E402

CHANNEL = "C0INDUCTOR"
SPACING = timedelta(minutes=20)
HF = sharded("inductor", "inductor_huggingface", 5)
TIMM = sharded("inductor", "inductor_timm", 6)
TORCHBENCH = sharded("inductor", "inductor_torchbench", 6)
DYNAMIC = sharded("inductor", "dynamic_inductor_huggingface", 5)
JOBS = HF + TIMM + TORCHBENCH + DYNAMIC


@dataclass
class Incident:
    """A named trunk history, and what people do (by commit index) while it unfolds."""

    name: str
    commits: int
    break_jobs: Callable[[Trunk], None]
    actions: dict[int, str] = field(default_factory=dict)  # commit index -> triage verb


def failing(trunk: Trunk, names: list[str], first: int, last: int, line: str) -> None:
    for i in range(first, last + 1):
        for name in names:
            trunk.set(i, name, "failure", line=line)


def noise(trunk: Trunk, seed: int, flaky: float = 0.01, isolated: float = 0.004) -> None:
    """Everything not set yet passes, with flaky reruns and one-off failures sprinkled in."""
    rng = random.Random(seed)
    for i in range(len(trunk.shas)):
        for name in trunk.job_names:
            if (i, name) in trunk.runs:
                continue
            roll = rng.random()
            if roll < isolated:
                trunk.set(i, name, "failure", line="RuntimeError: CUDA error: unspecified")
            elif roll < isolated + flaky:
                trunk.set(i, name, "failure", "success")
            else:
                trunk.set(i, name, "success")


INCIDENTS = [
    Incident("one shard broken, reverted after 3 h", 40,
             lambda t: failing(t, [HF[1]], 12, 21, "AssertionError: accuracy failed"),
             actions={16: "ack"}),
    Incident("one change breaks 3 jobs, fixed after 16 h", 80,
             lambda t: (failing(t, [HF[0], HF[3]], 15, 62, "RuntimeError: shape mismatch"),
                        failing(t, TIMM[2:3], 15, 62, "RuntimeError: shape mismatch"),
                        failing(t, TORCHBENCH[4:5], 15, 62, "RuntimeError: shape mismatch")),
             actions={19: "ack", 24: "assign"}),
    Incident("two unrelated breakages overlap", 60,
             lambda t: (failing(t, DYNAMIC[1:2], 10, 30, "torch._dynamo.exc.Unsupported"),
                        failing(t, TIMM[4:5], 35, 50, "AssertionError: accuracy failed")),
             actions={14: "ack", 40: "ack"}),
    Incident("flaky noise only, no incident", 72, lambda t: None),
]


@dataclass
class Count:
    name: str
    commits: int
    results: int
    alerts: int
    events: int
    parents: int
    edits: int
    replies: int
    calls: int

    @property
    def messages(self) -> int:
        return self.parents + self.replies


def run(incident: Incident, seed: int) -> Count:
    start = datetime.now(UTC).replace(microsecond=0) - SPACING * incident.commits
    trunk = Trunk.linear(incident.commits, JOBS, salt=incident.name, start=start,
                         spacing=SPACING)
    incident.break_jobs(trunk)
    noise(trunk, seed)
    clock = FakeClock(start)
    with FakeSlack() as slack, tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_path=f"{tmp}/bot.db", slack_bot_token="xoxb-bench",
                            slack_signing_secret="bench", slack_api_url=slack.url + "/api/",
                            slack_channel=CHANNEL, scheduler_enabled=False,
                            routes=(Route(channel=CHANNEL),))
        Store(settings.database_path).migrate()
        # not started: the sender's passes are run here, on the bench's clock
        bot = Bot(settings, clock=clock, sender_options={"clock": clock, "pace_s": 0.0})
        results = 0
        for i in range(incident.commits):
            clock.set(trunk.times[i])
            push = parse_push(trunk.push_delivery(i, i)["payload"])
            bot.ingestor.commits(REPO, "main", push.commits, after=push.before)
            clock.set(trunk.times[i] + timedelta(hours=1))
            for name in trunk.job_names:
                for delivery in trunk.job_deliveries(i, name):
                    bot.ingestor.results([parse_workflow_job(delivery["payload"])])
                    results += 1
            verb = incident.actions.get(i)
            if verb is not None:
                alert = bot.store.db.execute(
                    "SELECT max(id) FROM alerts WHERE state != 'resolved'").fetchone()[0]
                if alert is not None:
                    bot.triage.perform(Request(verb=verb, alert_id=alert, actor="U0SHERIFF",  # type: ignore[arg-type]
                                         assignee="U0OWNER"))
            while bot.sender.run_once():
                pass
        db = bot.store.db
        alerts = db.execute("SELECT count(*) FROM alerts").fetchone()[0]
        events = db.execute("SELECT count(*) FROM alert_events").fetchone()[0]
        posts = slack.calls_to("chat.postMessage")
        count = Count(incident.name, incident.commits, results, alerts, events,
                      parents=sum(1 for c in posts if not c.params.get("thread_ts")),
                      edits=len(slack.calls_to("chat.update")),
                      replies=sum(1 for c in posts if c.params.get("thread_ts")),
                      calls=len(slack.calls))
        assert not slack.violations, slack.violations
        bot.store.close()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print a JSON summary line")
    args = parser.parse_args(argv)
    print(f"Slack messages per incident: {len(JOBS)} shard jobs, a commit every "
          f"{int(SPACING.total_seconds() // 60)} min, 1% flaky and 0.4% one-off failures, "
          f"default route (extend_interval 30m), seed {args.seed}")
    header = (f"{'incident':<44} {'commits':>7} {'results':>7} {'alerts':>6} {'events':>6} "
              f"{'parents':>7} {'edits':>5} {'replies':>7} {'calls':>5}")
    print(header)
    print("-" * len(header))
    counts = [run(incident, args.seed) for incident in INCIDENTS]
    for c in counts:
        print(f"{c.name:<44} {c.commits:>7} {c.results:>7} {c.alerts:>6} {c.events:>6} "
              f"{c.parents:>7} {c.edits:>5} {c.replies:>7} {c.calls:>5}")
    if args.json:
        print("JSON " + json.dumps([c.__dict__ for c in counts]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
