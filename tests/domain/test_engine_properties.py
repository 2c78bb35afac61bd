"""Property test: the engine against an oracle that computes the final state from scratch.

Random trunk histories (sharded and periodic jobs; re-run attempts of a run; restarts
on ``trunk/{sha}`` as new runs; runs still going; shards that never report; no-signal
conclusions; unwatched and excluded jobs; breakages that recover and fail again) are
delivered as GitHub webhooks through the real ``Ingestor`` and a SQLite ``Store``:

- in trunk order, one delivery at a time;
- shuffled (pushes too: the push chain must restore trunk order), one at a time;
- shuffled and cut into random batches;
- as one single batch;

and then everything is delivered again, which must change nothing.

The oracle shares no code with the engine: from the final set of facts it computes the
cells (HUD's merge per shard, then shards), each job's streaks (every run of failing
commits between two passes), which of them alert (at least ``threshold`` long), how
they group into alerts in trunk order, and how each alert ends. It filters nothing:
every alert member the engine holds must be one the oracle computed, and the other way
round. The engine may also hold members that late results took back ("withdrawn": the
bot alerted on what it knew, then learnt otherwise); each must be justified: in the
final facts its commits hold no streak that long.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.domain.route import Route
from bot.ingest.github_payloads import parse_push, parse_workflow_job
from bot.ingest.pipeline import Commits, Fact, Ingestor
from bot.store.db import Store
from tests.support.trunk import BASE_TIME, REPO, Trunk

BRANCH = "main"
NOW = BASE_TIME + timedelta(days=30)
ROUTE_MAX_AGE = timedelta(days=3650)  # the age gate has its own scenario tests
BUILD = "cuda12.8-py3.10-gcc9-sm86"
RUNNER = "linux.g5.4xlarge.nvidia.gpu"

# startup_failure is an infrastructure failure (nothing ran, EVIDENCE.md): by default it
# counts like a cancelled run, so it makes no streak and is no flaky evidence
FAILED = {"failure", "timed_out"}
HEALTHY = ["success"] * 6 + ["failure", "timed_out", "cancelled", "skipped", "neutral",
                             "startup_failure"]
BROKEN = ["failure"] * 6 + ["timed_out", "success", "startup_failure", "cancelled", "skipped"]


# --- histories ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSpec:
    config: str
    workflow: str
    shards: int
    period: int  # runs on commits i with i % period == offset: periodic jobs skip commits
    offset: int
    watched: bool

    @property
    def key(self) -> str:
        return f"{self.workflow} / {BUILD} / test ({self.config})"

    def names(self) -> list[str]:
        return [f"{self.workflow} / {BUILD} / test ({self.config}, {i}, {self.shards}, {RUNNER})"
                for i in range(1, self.shards + 1)]


@dataclass(frozen=True)
class Run:
    """One delivery of one job attempt: ``running`` is an in_progress delivery."""

    index: int  # commit
    name: str  # full job name with shard
    job_id: int
    run_id: int
    attempt: int
    ref: str
    conclusion: str | None  # None while running


@dataclass
class History:
    trunk: Trunk
    specs: list[JobSpec]
    runs: list[Run]
    pushes: list[tuple[int, int]]  # (first, last) commit indexes of each push
    threshold: int
    seed: int

    def spec_of(self, full_name: str) -> JobSpec:
        (spec,) = [s for s in self.specs if full_name in s.names()]
        return spec


@st.composite
def histories(draw: st.DrawFn) -> History:
    n = draw(st.integers(3, 12))
    specs: list[JobSpec] = []
    for j in range(draw(st.integers(1, 3))):
        period = draw(st.sampled_from([1, 1, 1, 2, 3]))
        specs.append(JobSpec(f"inductor_j{j}", draw(st.sampled_from(["inductor",
                                                                       "inductor-periodic"])),
                             draw(st.integers(1, 3)), period, draw(st.integers(0, period - 1)),
                             True))
    if draw(st.booleans()):  # jobs the route must not see
        specs.append(JobSpec("default", "pull", 1, 1, 0, False))
        specs.append(JobSpec("inductor_x, 1, 1, linux.g5, unstable", "inductor", 1, 1, 0, False))
    trunk = Trunk.linear(n, [], salt=str(draw(st.integers(0, 3))))
    # breakages: windows of commits on which some jobs mostly fail; a window can end and
    # another begin right after it (recover at N, fail at N + 1)
    windows = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=3))
    broken = {spec.key: [w for w in windows if draw(st.booleans())] for spec in specs}
    runs: list[Run] = []
    next_id = 1000
    for i in range(n):
        for spec in specs:
            if i % spec.period != spec.offset:
                continue  # a periodic job that did not run on this commit
            window = any(start <= i < start + length for start, length in broken[spec.key])
            pool = BROKEN if window else HEALTHY
            for s, name in enumerate(spec.names()):
                if s > 0 and draw(st.integers(0, 7)) == 0:
                    continue  # this shard never reports
                run_id = 5000 + i * 10 + s
                for number in range(1, draw(st.integers(1, 3)) + 1):
                    # a re-run attempt of the same run, or a restart: a new run on trunk/{sha}
                    restart = number > 1 and draw(st.booleans())
                    next_id += 1
                    ref = f"trunk/{trunk.shas[i]}" if restart else BRANCH
                    rid = 900_000 + next_id if restart else run_id
                    attempt = 1 if restart else number
                    kind = draw(st.integers(0, 9))
                    conclusion = draw(st.sampled_from(pool))
                    if kind == 0:  # still running, never finished
                        runs.append(Run(i, name, next_id, rid, attempt, ref, None))
                        continue
                    if kind == 1:  # reported running, then finished (same job id)
                        runs.append(Run(i, name, next_id, rid, attempt, ref, None))
                    runs.append(Run(i, name, next_id, rid, attempt, ref, conclusion))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1)))
    bounds = [0, *cuts, n]
    pushes = [(a, b - 1) for a, b in zip(bounds, bounds[1:], strict=False)]
    return History(trunk, specs, runs, pushes, draw(st.integers(2, 3)),
                   draw(st.integers(0, 2**16)))


def delivery(h: History, run: Run) -> dict[str, Any]:
    workflow, _, job = run.name.partition(" / ")
    done = run.conclusion is not None
    completed = h.trunk.times[run.index] + timedelta(hours=1, minutes=run.job_id % 50)
    return {"event": "workflow_job", "payload": {
        "action": "completed" if done else "in_progress",
        "workflow_job": {
            "id": run.job_id, "run_id": run.run_id, "run_attempt": run.attempt,
            "head_sha": h.trunk.shas[run.index], "head_branch": run.ref,
            "workflow_name": workflow, "name": job,
            "status": "completed" if done else "in_progress", "conclusion": run.conclusion,
            "html_url": f"https://github.com/{REPO}/actions/runs/{run.run_id}/job/{run.job_id}",
            "started_at": (completed - timedelta(minutes=30)).isoformat(),
            "completed_at": completed.isoformat() if done else None,
        },
        "repository": {"full_name": REPO},
    }}


def deliveries(h: History) -> list[dict[str, Any]]:
    """Everything, in trunk order: each push, then the runs on its commits."""
    out: list[dict[str, Any]] = []
    for first, last in h.pushes:
        out.append(h.trunk.push_delivery(first, last))
        out += [delivery(h, r) for r in h.runs if first <= r.index <= last]
    return out


# --- the oracle --------------------------------------------------------------------------------


@dataclass(frozen=True)
class OracleMember:
    key: str
    streak: int
    first: int  # trunk indexes
    newest: int
    last_green: int | None
    end: int | None  # the pass that ended it
    reached: int


@dataclass
class OracleAlert:
    members: list[OracleMember] = field(default_factory=list)

    def range(self) -> tuple[int, int]:  # (low exclusive, high inclusive); low -1: open
        ranges = [(-1 if m.last_green is None else m.last_green, m.first) for m in self.members]
        low, high = max(r[0] for r in ranges), min(r[1] for r in ranges)
        if low < high:
            return low, high
        return min(ranges, key=lambda r: (r[1] - r[0], r[1]))

    def open_at(self, index: int) -> bool:
        return any(m.reached <= index and (m.end is None or m.end > index) for m in self.members)


class Oracle:
    """The final state of the rules, computed from the final facts alone."""

    def __init__(self, h: History) -> None:
        self.h = h
        final: dict[int, Run] = {}
        for run in h.runs:  # a finished delivery of a job id outranks its running one
            if run.job_id not in final or run.conclusion is not None:
                final[run.job_id] = run
        self.runs = [r for r in final.values() if h.spec_of(r.name).watched]

    def cell(self, spec: JobSpec, index: int) -> str:
        shards: dict[str, set[str]] = {}
        for r in self.runs:
            if r.index == index and r.name in spec.names():
                shards.setdefault(r.name, set()).add(r.conclusion or "running")
        if not shards:
            return "none"
        verdicts = set()
        for outcomes in shards.values():
            if "success" in outcomes:
                verdicts.add("flaky" if outcomes & FAILED else "success")
            elif outcomes & FAILED:
                verdicts.add("failure")
            elif "running" in outcomes:
                verdicts.add("pending")
            else:
                verdicts.add("none")
        if len(shards) < spec.shards:
            verdicts.add("pending")
        return next((v for v in ("failure", "pending", "flaky", "success") if v in verdicts),
                    "none")

    def cells(self) -> dict[tuple[str, str], str]:
        out = {}
        for spec in self.h.specs:
            if not spec.watched:
                continue
            for i, sha in enumerate(self.h.trunk.shas):
                if any(r.index == i and r.name in spec.names() for r in self.runs):
                    out[(spec.key, sha)] = self.cell(spec, i)
        return out

    def streaks(self, spec: JobSpec) -> list[OracleMember]:
        """Every run of failing commits between two passes, with where it reached the
        threshold (None when it never did)."""
        out: list[OracleMember] = []
        signal = [(i, c) for i in range(len(self.h.trunk.shas))
                  if (c := self.cell(spec, i)) in ("failure", "flaky", "success")]
        green: int | None = None
        run: list[int] = []
        for i, c in [*signal, (None, "end")]:
            if c == "failure":
                run.append(i)  # type: ignore[arg-type]
                continue
            if run:
                reached = run[self.h.threshold - 1] if len(run) >= self.h.threshold else -1
                out.append(OracleMember(spec.key, len(run), run[0], run[-1], green, i, reached))
                run = []
            green = i
        return out

    def alerts(self) -> list[OracleAlert]:
        claims = [m for spec in self.h.specs if spec.watched for m in self.streaks(spec)
                  if m.reached >= 0]
        alerts: list[OracleAlert] = []
        for claim in sorted(claims, key=lambda m: (m.reached, m.key)):
            own = (-1 if claim.last_green is None else claim.last_green, claim.first)
            best, best_rank = None, None
            for alert in alerts:
                low, high = alert.range()
                shared = min(high, own[1]) - max(low, own[0])
                if (not alert.open_at(claim.reached) or shared <= 0
                        or any(m.key == claim.key for m in alert.members)):
                    continue
                founded = min((m.reached, m.key) for m in alert.members)
                rank = (abs((high - low) - shared), founded)
                if best_rank is None or rank < best_rank:
                    best, best_rank = alert, rank
            if best is None:
                alerts.append(OracleAlert([claim]))
            else:
                best.members.append(claim)
        return alerts


# --- comparing ------------------------------------------------------------------------------------


def oracle_view(h: History, oracle: Oracle) -> list[tuple[Any, ...]]:
    shas = h.trunk.shas

    def sha(i: int | None) -> str | None:
        return None if i is None else shas[i]

    views = []
    for alert in oracle.alerts():
        ended = all(m.end is not None for m in alert.members)
        resolved = sha(max(m.end for m in alert.members)) if ended else None  # type: ignore[type-var]
        low, high = alert.range()
        members = sorted((m.key, m.streak, shas[m.first], shas[m.newest], sha(m.last_green),
                          m.end is not None) for m in alert.members)
        views.append(("resolved" if ended else "open", resolved,
                      None if low < 0 else shas[low], shas[high], tuple(members)))
    return sorted(views, key=repr)


def engine_view(store: Store) -> list[tuple[Any, ...]]:
    """Alerts with live members, as the oracle sees alerts; withdrawn members left out."""
    db = store.db
    sha_at = dict(db.execute("SELECT position, sha FROM commits").fetchall())
    views = []
    for alert_id, state, resolved, low, high in db.execute(
            "SELECT id, state, resolved_sha, range_last_green, range_first_failing FROM alerts "
            "ORDER BY id").fetchall():
        members = sorted(db.execute(
            "SELECT job_key, streak, first_failing_sha, newest_failing_sha, last_green_sha, "
            "recovered FROM alert_jobs WHERE alert_id = ? AND withdrawn = 0",
            [alert_id]).fetchall())
        if not members:
            continue  # every member was taken back: checked by withdrawn_are_justified
        views.append((state, resolved if state == "resolved" else None,
                      None if low is None else sha_at[low], sha_at[high],
                      tuple((k, s, f, n, g, bool(r)) for k, s, f, n, g, r in members)))
    return sorted(views, key=repr)


def withdrawn_are_justified(store: Store, h: History, oracle: Oracle) -> int:
    """A member the engine took back covers commits that now hold no streak long enough
    to alert, or whose streak a live member of the same job holds. Returns how many."""
    index = {sha: i for i, sha in enumerate(h.trunk.shas)}
    specs = {s.key: s for s in h.specs}
    live = {(k, f) for k, f in store.db.execute(
        "SELECT job_key, first_failing_sha FROM alert_jobs WHERE withdrawn = 0").fetchall()}
    rows = store.db.execute("SELECT job_key, first_failing_sha, newest_failing_sha "
                            "FROM alert_jobs WHERE withdrawn = 1").fetchall()
    for key, first, newest in rows:
        for streak in oracle.streaks(specs[key]):
            if streak.reached >= 0 and streak.first <= index[newest] and \
                    index[first] <= streak.newest:
                assert (key, h.trunk.shas[streak.first]) in live, (key, first, newest)
    return len(rows)


def engine_cells(store: Store) -> dict[tuple[str, str], str]:
    return {(key, sha): status for key, sha, status in store.db.execute(
        "SELECT job_key, sha, status FROM cells").fetchall()}


def trunk_order(store: Store) -> list[str]:
    return [row[0] for row in store.db.execute("SELECT sha FROM commits ORDER BY position")]


def dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    db = store.db
    return {t: sorted(db.execute(f"SELECT * FROM [{t}]").fetchall(), key=repr)
            for t in db.table_names() if not t.startswith(("_", "sqlite_"))}


# --- driving the engine --------------------------------------------------------------------------


def fact(item: dict[str, Any]) -> Fact:
    if item["event"] == "push":
        push = parse_push(item["payload"])
        assert push.branch is not None
        return Commits(push.repo, push.branch, push.commits, push.before)
    return parse_workflow_job(item["payload"])


def feed(ingestor: Ingestor, batches: Iterable[Sequence[dict[str, Any]]]) -> tuple[int, set[int]]:
    stored, touched = 0, set()
    for batch in batches:
        report = ingestor.ingest([fact(item) for item in batch])
        stored += report.results_stored
        touched |= report.alerts
    return stored, touched


def engine(path: Path, h: History) -> tuple[Store, Ingestor]:
    store = Store(path)
    store.migrate()
    route = Route(threshold=h.threshold, max_age=ROUTE_MAX_AGE)
    return store, Ingestor(store, [route], lambda: NOW)


def arrivals(h: History) -> dict[str, list[list[dict[str, Any]]]]:
    """The same deliveries, four ways."""
    ordered = deliveries(h)
    rng = random.Random(h.seed)
    shuffled = list(ordered)
    rng.shuffle(shuffled)
    batches: list[list[dict[str, Any]]] = []
    rest = list(shuffled)
    while rest:
        size = rng.randint(1, max(1, len(rest) // 2))
        batches.append(rest[:size])
        rest = rest[size:]
    return {
        "in order": [[d] for d in ordered],
        "shuffled": [[d] for d in shuffled],
        "batches": batches,
        "one batch": [shuffled],
    }


@settings(max_examples=int(os.environ.get("ENGINE_EXAMPLES", "70")), deadline=None,
          derandomize=os.environ.get("ENGINE_RANDOM") is None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_engine_matches_the_oracle_in_any_arrival_order_and_batching(h: History) -> None:
    oracle = Oracle(h)
    expected = oracle_view(h, oracle)
    expected_cells = oracle.cells()
    event(f"{len(expected)} alert(s), {sum(v[0] == 'resolved' for v in expected)} resolved")
    with tempfile.TemporaryDirectory() as tmp:
        for label, batches in arrivals(h).items():
            store, ingestor = engine(Path(tmp) / f"{label}.db", h)
            try:
                feed(ingestor, batches)
                assert trunk_order(store) == h.trunk.shas, label
                assert engine_cells(store) == expected_cells, label
                assert engine_view(store) == expected, label
                if withdrawn_are_justified(store, h, oracle):
                    event(f"{label}: a member was taken back")
                if label == "shuffled":
                    # everything delivered again, in either order, changes nothing
                    snapshot = dump(store)
                    assert feed(ingestor, [[d] for d in deliveries(h)]) == (0, set())
                    assert feed(ingestor, batches) == (0, set())
                    assert dump(store) == snapshot
            finally:
                store.close()
