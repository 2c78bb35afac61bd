"""Moving one ``github`` probe along: planned -> dispatching -> dispatched -> running -> done.

Each step reads the probe's row and ends with a committed, guarded write, so a tick
can stop anywhere (crash, restart, 5xx) and the next one continues without a second
dispatch: a probe that *may* have started a run is looked for before it is re-sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.bisect.config import BisectConfig
from bot.bisect.github import (
    CORRELATION_MARK,
    DispatchRefused,
    DispatchUncertain,
    GitHubDispatcher,
)
from bot.domain.bisect_planner import Outcome
from bot.domain.cells import cell_status
from bot.domain.jobkey import WORKFLOW_SEPARATOR, job_key, strip_shard
from bot.domain.model import CellStatus, JobResult
from bot.github.rest import ApiRateLimited, ApiUnavailable
from bot.store import bisects as store
from bot.store.bisects import Bisect, Probe
from bot.store.db import Store

log = logging.getLogger(__name__)

LOOKUPS_BEFORE_REDISPATCH = 2
"""After an uncertain dispatch, list calls that must find nothing before sending it again."""
REDISPATCH_GRACE = timedelta(minutes=5)
"""...and the time that must pass: GitHub can take a while to list a new run."""
MAX_DISPATCHES = 3
"""Dispatches one probe may send before it counts as no answer."""
LOST_AFTER = timedelta(hours=1)
"""A run GitHub accepted (204) but never listed in this long is given up as no answer."""


class BisectBroken(Exception):
    """The bisect cannot go on (GitHub refused the dispatch); the message says why."""


@dataclass(frozen=True, slots=True)
class ProbeContext:
    """What a GitHub probe's steps use: the store, the clock, the ingest path, its bisect."""

    store: Store
    clock: Callable[[], datetime]
    ingest_results: Callable[[list[JobResult]], object]
    bisect: Bisect
    config: BisectConfig
    github: GitHubDispatcher


def job_part(key: str) -> str:
    """``inductor / cuda / test (x)`` -> ``cuda / test (x)``: the job without its workflow."""
    return key.partition(WORKFLOW_SEPARATOR)[2] or key


def correlation_prefix(bisect_id: int, probe_id: int) -> str:
    """What every dispatch of one probe carries; one attempt adds its number."""
    return f"{CORRELATION_MARK}{bisect_id}-{probe_id}-"


def render(template: str, bisect: Bisect, sha: str, correlation: str | None) -> str:
    return template.format(sha=sha, job=job_part(bisect.job_key), key=bisect.job_key,
                           correlation=correlation or "")


def advance_probe(ctx: ProbeContext, probe: Probe) -> None:
    """Take every step the probe can take now (at most dispatch, find, collect)."""
    for _ in range(3):
        before = (probe.state, probe.attempt, probe.run_id)
        _step(ctx, probe)
        fresh = _reload(ctx, probe.id)
        if fresh is None or fresh.done or (fresh.state, fresh.attempt, fresh.run_id) == before:
            return
        if fresh.state in ("dispatching", "dispatched"):
            return  # a new run is never listed at once: look for it next tick
        probe = fresh


def _reload(ctx: ProbeContext, probe_id: int) -> Probe | None:
    return next((p for p in store.probes(ctx.store.db, ctx.bisect.id) if p.id == probe_id),
                None)


def _step(ctx: ProbeContext, probe: Probe) -> None:
    match probe.state:
        case "planned":
            _dispatch(ctx, probe)
        case "dispatching":
            _look_after_uncertain_dispatch(ctx, probe)
        case "dispatched":
            _look_for_run(ctx, probe)
        case "running":
            _collect(ctx, probe)


def _dispatch(ctx: ProbeContext, probe: Probe) -> None:
    bisect, config = ctx.bisect, ctx.config
    assert config.workflow is not None
    attempt = probe.attempt + 1
    correlation = (f"{correlation_prefix(bisect.id, probe.id)}{attempt}"
                   if config.correlates else None)
    with ctx.store.transaction() as db:
        if not store.claim_dispatch(db, probe, ctx.clock(), correlation):
            return  # another tick got there first
    ref = render(config.ref, bisect, probe.sha, correlation)
    inputs = {name: render(value, bisect, probe.sha, correlation)
              for name, value in config.inputs.items()}
    try:
        ctx.github.dispatch(bisect.repo, config.workflow, ref, inputs)
    except DispatchUncertain as exc:
        log.warning("bisect %s probe %s: %s", bisect.id, probe.sha[:12], exc)
        with ctx.store.transaction() as db:
            store.note(db, probe.id, f"{exc}; looking for the run before dispatching again")
        return
    except ApiRateLimited as exc:
        with ctx.store.transaction() as db:
            store.unclaim(db, probe.id, attempt, f"rate limited: {exc.reason}")
        raise
    except DispatchRefused as exc:
        with ctx.store.transaction() as db:
            store.finish_probe(db, probe.id, Outcome.INCONCLUSIVE, str(exc), ctx.clock())
        raise BisectBroken(str(exc)) from None
    with ctx.store.transaction() as db:
        store.mark_dispatched(db, probe.id, attempt)


def _find(ctx: ProbeContext, probe: Probe) -> bool:
    """Look for the probe's run; True (and the run recorded) when found."""
    bisect, config = ctx.bisect, ctx.config
    assert config.workflow is not None and probe.dispatched_at is not None
    head_sha = probe.sha if "{sha}" in config.ref else None
    correlation = correlation_prefix(bisect.id, probe.id) if config.correlates else None
    run = ctx.github.find_run(bisect.repo, config.workflow, head_sha, probe.dispatched_at,
                              correlation, exclude=store.claimed_run_ids(ctx.store.db))
    with ctx.store.transaction() as db:
        if run is None:
            store.note(db, probe.id, probe.detail or "waiting for GitHub to list the run",
                       lookup=True)
            return False
        store.set_run(db, probe.id, run.id, run.html_url)
    return True


def _look_after_uncertain_dispatch(ctx: ProbeContext, probe: Probe) -> None:
    """The POST may have started a run: find it, or re-send only after a grace period."""
    if _find(ctx, probe):
        return
    now = ctx.clock()
    waited = now - (probe.attempted_at or now)
    if probe.lookups + 1 < LOOKUPS_BEFORE_REDISPATCH or waited < REDISPATCH_GRACE:
        return
    if probe.attempt >= MAX_DISPATCHES:
        with ctx.store.transaction() as db:
            store.finish_probe(db, probe.id, Outcome.INCONCLUSIVE,
                               f"no run found after {probe.attempt} dispatches", now)
        return
    log.info("bisect %s probe %s: no run %s after the dispatch, sending it again",
             ctx.bisect.id, probe.sha[:12], waited)
    _dispatch(ctx, _reload(ctx, probe.id) or probe)


def _look_for_run(ctx: ProbeContext, probe: Probe) -> None:
    """GitHub accepted the dispatch, so a run exists: wait for it to be listed."""
    if _find(ctx, probe):
        return
    now = ctx.clock()
    if probe.attempted_at is not None and now - probe.attempted_at > LOST_AFTER:
        with ctx.store.transaction() as db:
            store.finish_probe(db, probe.id, Outcome.INCONCLUSIVE,
                               f"GitHub accepted the dispatch but listed no run in {LOST_AFTER}",
                               now)


def _collect(ctx: ProbeContext, probe: Probe) -> None:
    """Read the run's jobs (through the normal ingest) and decide the probe's outcome."""
    bisect = ctx.bisect
    assert probe.run_id is not None
    fetched: list[JobResult] = []
    try:
        fetched = ctx.github.run_jobs(bisect.repo, probe.run_id)
    except ApiUnavailable as exc:  # webhooks may still have delivered them: read what is stored
        log.warning("bisect %s: jobs of run %s: %s", bisect.id, probe.run_id, exc)
    if fetched:
        ctx.ingest_results(fetched)
    by_id = {r.job_id: r for r in store.run_results(ctx.store.db, bisect.repo, probe.run_id)}
    by_id.update({r.job_id: r for r in fetched})
    wanted = strip_shard(job_part(bisect.job_key))
    mine = [r for r in by_id.values()
            if job_part(job_key(r.workflow, r.job_name)) == wanted]
    status = cell_status(mine) if mine else None
    now = ctx.clock()
    if status is CellStatus.PENDING:
        return
    decided = _decide(status, mine)
    if decided is None:
        run = ctx.github.get_run(bisect.repo, probe.run_id)
        if run is not None and not run.completed:
            return
        verdict = run.conclusion if run is not None else "gone"
        decided = (Outcome.INCONCLUSIVE,
                   f"run ended ({verdict}) without a result for {job_part(bisect.job_key)}")
    outcome, detail = decided
    with ctx.store.transaction() as db:
        store.finish_probe(db, probe.id, outcome, detail, now)


def _decide(status: CellStatus | None, mine: list[JobResult]) -> tuple[Outcome, str] | None:
    if status is CellStatus.FAILURE:
        failed = sum(1 for r in mine if (r.conclusion or "") in ("failure", "timed_out",
                                                                  "startup_failure"))
        return Outcome.FAIL, f"{failed} of {len(mine)} shard attempts failed"
    if status is CellStatus.SUCCESS:
        return Outcome.PASS, "passed"
    if status is CellStatus.FLAKY:
        return Outcome.INCONCLUSIVE, "failed, then passed on a rerun inside the run (flaky)"
    if status is CellStatus.NONE:
        conclusions = sorted({r.conclusion or "none" for r in mine})
        return Outcome.INCONCLUSIVE, f"no signal ({', '.join(conclusions)})"
    return None
