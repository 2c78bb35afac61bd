"""Property tests: the incremental engine against a reference model that recomputes from scratch.

Random trunk histories (sharded and periodic jobs, reruns, pending shards, shards that
never report, no-signal conclusions, unwatched and excluded jobs) are delivered as
GitHub webhooks through the real ``Ingestor`` and a SQLite ``Store``: once in trunk
order, once shuffled (results late, early and out of order), and then redelivered.

The reference model keeps every attempt in plain dicts and, after each delivery,
recomputes cells and streaks over the whole history from the rules in the issue; its
alert bookkeeping follows the issue's rules (open, join the overlapping alert, update,
recover, resolve) in the same delivery order.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot.domain.route import Route
from bot.domain.streak import compute_streak
from bot.ingest.github_payloads import parse_push, parse_workflow_job
from bot.ingest.pipeline import Ingestor
from bot.store import history
from bot.store.db import Store
from tests.support.trunk import BASE_TIME, REPO, Trunk

BRANCH = "main"
NOW = BASE_TIME + timedelta(days=30)
ROUTE_MAX_AGE = timedelta(days=3650)  # the age gate has its own scenario tests
BUILD = "cuda12.8-py3.10-gcc9-sm86"
RUNNER = "linux.g5.4xlarge.nvidia.gpu"

# startup_failure is an infrastructure failure (nothing ran, EVIDENCE.md): by default it
# counts like a cancelled run, so it makes no streak
FAILED = {"failure", "timed_out"}
NO_SIGNAL = {"cancelled", "skipped", "neutral", "startup_failure"}
UNFINISHED = {"pending", "queued"}
# a healthy job mostly passes, with noise; a broken one mostly fails, with noise
HEALTHY = st.sampled_from(["success", "success", "success", "success", "failure", "timed_out",
                           "cancelled", "skipped", "neutral", "pending", "queued",
                           "startup_failure"])
BROKEN = st.sampled_from(["failure", "failure", "failure", "failure", "timed_out", "success",
                          "startup_failure", "cancelled", "pending", "skipped"])


# positions as the store assigns them to commits pushed in order, and its open lower bound
GAP = history.GAP
NO_LOW = -(2**62)


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


@dataclass
class History:
    trunk: Trunk
    specs: list[JobSpec]
    threshold: int
    seed: int
    push_batch: int

    def spec_of(self, full_name: str) -> JobSpec:
        (spec,) = [s for s in self.specs if full_name in s.names()]
        return spec


@st.composite
def histories(draw: st.DrawFn) -> History:
    n = draw(st.integers(3, 14))
    specs: list[JobSpec] = []
    for j in range(draw(st.integers(1, 4))):
        period = draw(st.sampled_from([1, 1, 2, 3]))
        specs.append(JobSpec(f"inductor_j{j}", draw(st.sampled_from(["inductor",
                                                                       "inductor-periodic"])),
                             draw(st.integers(1, 3)), period, draw(st.integers(0, period - 1)),
                             True))
    if draw(st.booleans()):  # jobs the route must not see
        specs.append(JobSpec("default", "pull", 1, 1, 0, False))
        specs.append(JobSpec("inductor_x, 1, 1, linux.g5, unstable", "inductor", 1, 1, 0, False))
    names = [name for spec in specs for name in spec.names()]
    trunk = Trunk.linear(n, names, salt=str(draw(st.integers(0, 3))))
    # a few breakages, each a window of commits on which some jobs mostly fail: jobs
    # broken by the same change get overlapping ranges, others do not
    breakages = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=2))
    broken = {spec.key: [b for b in breakages if draw(st.booleans())] for spec in specs}
    for i in range(n):
        for spec in specs:
            if i % spec.period != spec.offset:
                continue  # a periodic job that did not run on this commit
            window = any(start <= i < start + length for start, length in broken[spec.key])
            attempt = BROKEN if window else HEALTHY
            for s, name in enumerate(spec.names()):
                if s > 0 and draw(st.integers(0, 7)) == 0:
                    continue  # this shard never reports
                # mostly one attempt; sometimes reruns (flaky passes, failed reruns, ...)
                attempts = draw(st.lists(attempt, min_size=1, max_size=1)
                                | st.lists(attempt, min_size=2, max_size=3))
                trunk.set(i, name, *attempts)
    return History(trunk, specs, draw(st.integers(2, 3)), draw(st.integers(0, 2**16)),
                   draw(st.integers(1, 3)))


# --- the reference model -------------------------------------------------------------------------


@dataclass(frozen=True)
class RefStreak:
    length: int
    newest_signal: int | None  # indexes into trunk order
    newest_failure: int | None
    first_failure: int | None
    last_green: int | None


@dataclass
class RefMember:
    key: str
    streak: RefStreak
    recovered: bool = False

    @property
    def range(self) -> tuple[int, int]:
        s = self.streak
        assert s.first_failure is not None
        low = NO_LOW if s.last_green is None else GAP * (s.last_green + 1)
        return low, GAP * (s.first_failure + 1)


@dataclass
class RefAlert:
    id: int
    members: dict[str, RefMember] = field(default_factory=dict)
    open: bool = True

    def range(self) -> tuple[int, int]:
        ranges = [m.range for m in self.members.values()]
        low, high = max(r[0] for r in ranges), min(r[1] for r in ranges)
        if low < high:
            return low, high
        return min(ranges, key=lambda r: (r[1] - r[0], r[1]))


def ref_cell(shards: dict[str, list[tuple[int, int, str]]], total: int) -> str:
    """The issue's cell rule, from scratch: shards keyed by name, attempts (no, id, outcome)."""
    states = set()
    for attempts in shards.values():
        outcomes = {o for _, _, o in attempts}  # HUD: the set of conclusions decides
        if "success" in outcomes:
            states.add("flaky" if outcomes & FAILED else "success")
        elif outcomes & FAILED:
            states.add("failure")
        elif outcomes & UNFINISHED:
            states.add("pending")
        else:
            states.add("none")
    if len(shards) < total:
        states.add("pending")  # a shard that has not reported is unfinished
    for status in ("failure", "pending", "flaky", "success"):  # unfinished siblings may fail
        if status in states:
            return status
    return "none"


class Reference:
    def __init__(self, h: History) -> None:
        self.h = h
        self.order: list[str] = []
        self.attempts: dict[int, tuple[str, str, int, str]] = {}  # id -> sha, name, no, outcome
        self.alerts: list[RefAlert] = []

    # raw facts
    def push(self, shas: list[str]) -> None:
        """Place new commits; then judge each job with results on them, once per push."""
        new = [sha for sha in shas if sha not in self.order]
        self.order.extend(new)
        for key in sorted({self.h.spec_of(name).key for (sha, name, _, _)
                           in self.attempts.values() if sha in new}):
            self.evaluate(key)

    def job(self, payload: dict[str, Any]) -> None:
        job = payload["workflow_job"]
        name = f"{job['workflow_name']} / {job['name']}"
        spec = self.h.spec_of(name)
        if not spec.watched:
            return
        outcome = job["conclusion"] if job["status"] == "completed" else "pending"
        record = (job["head_sha"], name, job["run_attempt"], outcome)
        if self.attempts.get(job["id"]) == record:
            return
        self.attempts[job["id"]] = record
        if job["head_sha"] in self.order:
            self.evaluate(spec.key)

    # derived, from scratch
    def cells(self) -> dict[tuple[str, str], str]:
        grouped: dict[tuple[str, str], dict[str, list[tuple[int, int, str]]]] = {}
        for job_id, (sha, name, number, outcome) in self.attempts.items():
            if sha in self.order:
                cell = grouped.setdefault((self.h.spec_of(name).key, sha), {})
                cell.setdefault(name, []).append((number, job_id, outcome))
        return {
            (key, sha): ref_cell(shards, next(s.shards for s in self.h.specs if s.key == key))
            for (key, sha), shards in grouped.items()
        }

    def streak(self, key: str) -> RefStreak:
        cells = self.cells()
        signal = [i for i in reversed(range(len(self.order)))
                  if cells.get((key, self.order[i]), "none") in ("failure", "flaky", "success")]
        length = 0
        while length < len(signal) and cells[(key, self.order[signal[length]])] == "failure":
            length += 1
        return RefStreak(
            length,
            signal[0] if signal else None,
            signal[0] if length else None,
            signal[length - 1] if length else None,
            signal[length] if length < len(signal) else None,
        )

    def watched_keys(self) -> set[str]:
        return {s.key for s in self.h.specs if s.watched}

    # alert rules, in delivery order
    def evaluate(self, key: str) -> None:
        streak = self.streak(key)
        for alert in self.alerts:
            member = alert.members.get(key)
            if not alert.open or member is None or member.recovered:
                continue
            if streak.length:
                member.streak = streak
            elif (streak.newest_signal is not None and member.streak.newest_failure is not None
                  and streak.newest_signal >= member.streak.newest_failure):
                member.recovered = True
                alert.open = not all(m.recovered for m in alert.members.values())
            return
        if streak.length < self.h.threshold:
            return
        own = RefMember(key, streak)
        low, high = own.range
        candidates = [a for a in self.alerts
                      if a.open and max(a.range()[0], low) < min(a.range()[1], high)]
        if not candidates:
            alert = RefAlert(len(self.alerts) + 1)
            self.alerts.append(alert)
        else:
            # of several overlapping alerts, the one whose range the job narrows least
            def gap(a: RefAlert) -> int:
                a_low, a_high = a.range()
                inter = min(a_high, high) - max(a_low, low)
                return abs((a_high - a_low) - inter)

            alert = min(candidates, key=lambda a: (gap(a), a.id))
        alert.members[key] = own


# --- driving the real engine ---------------------------------------------------------------


def feed(ingestor: Ingestor, deliveries: Iterable[dict[str, Any]],
         reference: Reference | None = None) -> tuple[int, set[int]]:
    """Deliver to the engine (and the reference); returns results stored and alerts touched."""
    stored, touched = 0, set()
    for delivery in deliveries:
        if delivery["event"] == "push":
            push = parse_push(delivery["payload"])
            assert push.branch is not None
            report = ingestor.commits(push.repo, push.branch, push.commits, after=push.before)
            if reference is not None:
                reference.push([c.sha for c in push.commits])
        else:
            report = ingestor.result(parse_workflow_job(delivery["payload"]))
            if reference is not None:
                reference.job(delivery["payload"])
        stored += report.results_stored
        touched |= report.alerts
    return stored, touched


@dataclass(frozen=True)
class MemberView:
    key: str
    recovered: bool
    streak: int
    first_failing: str
    newest_failing: str
    last_green: str | None


@dataclass(frozen=True)
class AlertView:
    open: bool
    members: frozenset[MemberView]
    range: tuple[str | None, str]


def canonical(view: AlertView) -> tuple[bool, tuple[str, ...], tuple[str | None, str]]:
    """An alert as a sortable value (a frozenset's repr depends on its history)."""
    return view.open, tuple(sorted(map(repr, view.members))), view.range


def engine_alerts(store: Store) -> list[AlertView]:
    db = store.db
    sha_at = dict(db.execute("SELECT position, sha FROM commits").fetchall())
    views = []
    for alert_id, state, low, high in db.execute(
            "SELECT id, state, range_last_green, range_first_failing FROM alerts ORDER BY id"
    ).fetchall():
        members = frozenset(
            MemberView(key, bool(recovered), streak, ff, nf, lg)
            for key, recovered, streak, ff, nf, lg in db.execute(
                "SELECT job_key, recovered, streak, first_failing_sha, newest_failing_sha, "
                "last_green_sha FROM alert_jobs WHERE alert_id = ?", [alert_id]).fetchall())
        views.append(AlertView(state != "resolved", members,
                               (None if low is None else sha_at[low], sha_at[high])))
    return views


def reference_alerts(ref: Reference) -> list[AlertView]:
    def sha(index: int | None) -> str | None:
        return None if index is None else ref.order[index]

    def at(position: int) -> str | None:
        return None if position == NO_LOW else ref.order[position // GAP - 1]

    views = []
    for alert in ref.alerts:
        members = frozenset(
            MemberView(m.key, m.recovered, m.streak.length, sha(m.streak.first_failure) or "",
                       sha(m.streak.newest_failure) or "", sha(m.streak.last_green))
            for m in alert.members.values())
        low, high = alert.range()
        views.append(AlertView(alert.open, members, (at(low), at(high) or "")))
    return views


def engine_cells(store: Store) -> dict[tuple[str, str], str]:
    return {(key, sha): status for key, sha, status in store.db.execute(
        "SELECT job_key, sha, status FROM cells").fetchall()}


def engine_streak(store: Store, key: str) -> tuple[int, str | None, str | None, str | None]:
    s = compute_streak(history.walk_cells(store.db, REPO, BRANCH, key))
    return (s.length, None if s.first_failure is None else s.first_failure.sha,
            None if s.newest_failure is None else s.newest_failure.sha,
            None if s.last_green is None else s.last_green.sha)


def ref_streak(ref: Reference, key: str) -> tuple[int, str | None, str | None, str | None]:
    s = ref.streak(key)

    def sha(index: int | None) -> str | None:
        return None if index is None else ref.order[index]

    return s.length, sha(s.first_failure), sha(s.newest_failure), sha(s.last_green)


def active_members(views: list[AlertView]) -> dict[str, MemberView]:
    active: dict[str, MemberView] = {}
    for view in views:
        for m in view.members:
            if view.open and not m.recovered:
                assert m.key not in active, f"{m.key} is active in two alerts"
                active[m.key] = m
    return active


def dump(store: Store) -> dict[str, list[tuple[object, ...]]]:
    db = store.db
    return {t: sorted(db.execute(f"SELECT * FROM [{t}]").fetchall(), key=repr)
            for t in db.table_names() if not t.startswith(("_", "sqlite_"))}


def run_engine(path: Path, h: History, deliveries: list[dict[str, Any]]) -> tuple[Store, Reference]:
    store = Store(path)
    store.migrate()
    route = Route(threshold=h.threshold, max_age=ROUTE_MAX_AGE)
    reference = Reference(h)
    feed(Ingestor(store, [route], lambda: NOW), deliveries, reference)
    return store, reference


def check_against_reference(store: Store, ref: Reference, h: History) -> None:
    assert engine_cells(store) == ref.cells()
    for key in ref.watched_keys():
        assert engine_streak(store, key) == ref_streak(ref, key), key
    views = engine_alerts(store)
    assert sorted(map(canonical, views)) == sorted(map(canonical, reference_alerts(ref)))
    for view in views:
        # a resolved alert has no job still failing; an open one has at least one
        assert view.open == any(not m.recovered for m in view.members)
    # jobs meeting the condition now are active in exactly one open alert, with their
    # current streak and range. A job stays active while its streak is ongoing (even if
    # late results shortened it) or while a rerun withdrew its newest failure: then the
    # newest signal is older than the recorded failure, whose cell has no signal now
    active = active_members(views)
    for key in sorted(ref.watched_keys()):
        length, first, newest, green = ref_streak(ref, key)
        member = active.get(key)
        if length >= h.threshold:
            assert member is not None, key
        if member is None:
            continue
        if length:
            assert (member.streak, member.first_failing, member.newest_failing,
                    member.last_green) == (length, first, newest, green)
        else:
            signal = ref.streak(key).newest_signal
            assert signal is None or signal < ref.order.index(member.newest_failing), key
            assert ref.cells().get((key, member.newest_failing), "none") in ("pending", "none")


def settled(store: Store, ref: Reference, h: History) -> dict[str, Any]:
    """What must not depend on arrival order: cells, streaks, who is alerting, with what range."""
    active = {key: m for key, m in active_members(engine_alerts(store)).items()
              if ref.streak(key).length >= h.threshold}
    return {
        "cells": engine_cells(store),
        "streaks": {key: engine_streak(store, key) for key in ref.watched_keys()},
        "alerting": active,
    }


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(histories())
def test_engine_matches_reference_in_any_arrival_order(h: History) -> None:
    in_order = h.trunk.deliveries()
    shuffled = h.trunk.deliveries(shuffle_seed=h.seed, push_batch=h.push_batch)
    with tempfile.TemporaryDirectory() as tmp:
        first, ref_first = run_engine(Path(tmp) / "in_order.db", h, in_order)
        second, ref_second = run_engine(Path(tmp) / "shuffled.db", h, shuffled)
        try:
            check_against_reference(first, ref_first, h)
            check_against_reference(second, ref_second, h)
            assert settled(first, ref_first, h) == settled(second, ref_second, h)
            for label, ref in (("in order", ref_first), ("shuffled", ref_second)):
                sizes = sorted(len(a.members) for a in ref.alerts)
                event(f"{label}: {len(ref.alerts)} alert(s), "
                      f"{sum(not a.open for a in ref.alerts)} resolved, largest {sizes[-1:]}")

            # everything delivered again, in either order, changes nothing
            snapshot = dump(first)
            ingestor = Ingestor(first, [Route(threshold=h.threshold, max_age=ROUTE_MAX_AGE)],
                                lambda: NOW)
            assert feed(ingestor, in_order) == (0, set())
            assert feed(ingestor, shuffled) == (0, set())
            assert dump(first) == snapshot
        finally:
            first.close()
            second.close()
