"""The streak engine's step after a batch of facts: changed cells -> claims -> alerts.

For each job whose cells changed, only the stretch of history the change can affect is
read again (between the passes around the changed cells: no streak runs across a
pass), and the job's alert members are followed through it (``domain.alerts.track``).
When anything the grouping reads changed (where a streak reached the threshold, its
range, where it ended), the route's members are grouped again from the earliest trunk
position that changed (``domain.alerts.group_claims``). The store then holds what the
rules give on all the facts, whatever order they came in and however they were batched.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlite_utils

from bot.domain.alerts import (
    Claim,
    Founding,
    Member,
    TooOld,
    Withdrawn,
    assign_alert_ids,
    group_claims,
    recent,
    track,
)
from bot.domain.episodes import episodes
from bot.domain.manual_resolve import Follow, Hold, Reopen, after_manual_resolve
from bot.domain.route import Route
from bot.store import alerts as alert_store
from bot.store import history
from bot.store import triage as triage_store

Touched = Mapping[tuple[str, str, str], set[int]]  # (repo, branch, job key) -> positions


@dataclass
class AlertChanges:
    """The alerts a batch changed (the Slack side wakes up for them), and the streaks
    long enough to alert that stayed quiet because they are older than ``max_age``."""

    alerts: set[int] = field(default_factory=set)
    too_old: list[TooOld] = field(default_factory=list)


def update_alerts(db: sqlite_utils.Database, routes: Sequence[Route], touched: Touched,
                  now: datetime, starts: Collection[tuple[str, str, str]] | None = None
                  ) -> AlertChanges:
    """Bring every route's alerts up to date with the cells a batch changed.

    ``starts`` (default: all) are the jobs whose changes may start or join a streak (a
    new failure, a pass gone). A job with only passes added or times moved cannot make
    a new claim: it is read again only when a member of an alert lies between the passes
    around the change (that member may end; ``alerts.keys_in_alerts``).
    """
    changes = AlertChanges()
    by_route: dict[str, tuple[Route, dict[str, set[int]]]] = {}
    if starts is not None:
        quiet: dict[str, tuple[int, int]] = {}
        for ident, positions in touched.items():
            if ident not in starts:
                low, high = quiet.get(ident[2], (min(positions), max(positions)))
                quiet[ident[2]] = (min(low, *positions), max(high, *positions))
        alerting = alert_store.keys_in_alerts(db, quiet)
        touched = {ident: positions for ident, positions in touched.items()
                   if ident in starts or ident[2] in alerting}
    for (repo, branch, key), positions in touched.items():
        workflow, _, job_name = key.partition(" / ")
        for route in routes:
            if (route.repo, route.branch) == (repo, branch) and route.watches_job(workflow,
                                                                                 job_name):
                by_route.setdefault(route.name, (route, {}))[1].setdefault(key, set()).update(
                    positions)
    for name in sorted(by_route):
        route, keys = by_route[name]
        _update_route(db, route, keys, now, changes)
    return changes


def _update_route(db: sqlite_utils.Database, route: Route, keys: Mapping[str, set[int]],
                  now: datetime, changes: AlertChanges) -> None:
    kept: list[tuple[Member, Claim]] = []
    fresh: list[Claim] = []
    withdrawn: list[Withdrawn] = []
    for key in sorted(keys):
        positions = keys[key]
        low = history.pass_beyond(db, route.repo, route.branch, key, min(positions),
                                  newer=False)
        high = history.pass_beyond(db, route.repo, route.branch, key, max(positions),
                                   newer=True)
        cells = history.cells_between(db, route.repo, route.branch, key, low, high)
        members = alert_store.members_of_key(db, route.name, key, low, high)
        tracking = track(key, episodes(cells), members, route.threshold)
        kept += tracking.kept
        withdrawn += tracking.withdrawn
        for claim in tracking.fresh:
            if recent(claim, route.max_age, now):
                fresh.append(claim)
            elif claim.recovery is None:
                changes.too_old.append(TooOld(route.name, key, claim.length, claim.newest,
                                              route.max_age))
    starts = [c.reached for c in fresh] + [w.member.as_claim().reached for w in withdrawn]
    for member, claim in kept:
        before = member.as_claim()
        if before.grouping_facts() != claim.grouping_facts():
            starts += [before.reached, claim.reached]
    if not starts:
        for member, claim in kept:  # a streak grew, or its times moved: nothing regroups
            alert_store.apply_alert(db, route, member.alert_id, [claim], Founding(), {}, now)
            changes.alerts.add(member.alert_id)
        return
    _regroup(db, route, min(starts), kept, fresh, withdrawn, now, changes)


def _regroup(db: sqlite_utils.Database, route: Route, start: int,
             kept: Sequence[tuple[Member, Claim]], fresh: Sequence[Claim],
             withdrawn: Sequence[Withdrawn], now: datetime, changes: AlertChanges) -> None:
    """Group the route's claims again from trunk position ``start`` on.

    Members that reached the threshold before ``start`` stay where they are; alerts
    holding them may take new members. The others are grouped again with the fresh
    claims, and each group keeps an alert it already had when it can (nothing moves
    when nothing had to).
    """
    now_of = {(m.alert_id, m.job_key): c for m, c in kept}
    gone = {(w.member.alert_id, w.member.job_key) for w in withdrawn}
    claims: list[Claim] = []
    current: dict[tuple[str, int], int] = {}
    placed: set[tuple[int, str]] = set()  # the members the regrouping below writes again
    for member in alert_store.members_from(db, route.name, start):
        ident = (member.alert_id, member.job_key)
        if ident in gone:
            continue
        placed.add(ident)
        claim = now_of.get(ident, member.as_claim())
        claims.append(claim)
        current[(claim.key, claim.reached)] = member.alert_id
    fixed: list[tuple[int, list[Claim]]] = []
    for alert_id, members in alert_store.fixed_alerts(db, route.name, start):
        placed.update((alert_id, m.job_key) for m in members)
        fixed.append((alert_id, [now_of.get((alert_id, m.job_key), m.as_claim())
                                 for m in members if (alert_id, m.job_key) not in gone]))
    taken = alert_store.alerts_before(db, route.name, start)
    fresh_keys = {(c.key, c.reached) for c in fresh}
    claims += fresh

    def found(claim: Claim) -> Founding:
        """The rule after a manual resolve, asked only of a claim no alert holds yet."""
        if (claim.key, claim.reached) not in fresh_keys:
            return Founding()
        decision = after_manual_resolve(
            claim.as_streak(), alert_store.resolved_by_hand(db, route.name, claim.key))
        match decision:
            case Reopen(alert_id=alert_id):
                return Founding(reopen=alert_id)
            case Hold():
                return Founding(hold=True)
            case Follow(previous=previous):
                return Founding(follows=previous)
        return Founding()

    groups = group_claims(claims, fixed, found)
    ids = assign_alert_ids(groups, current, taken)
    settle = set(current.values()) | {w.member.alert_id for w in withdrawn}
    for gone_member in withdrawn:
        alert_store.withdraw(db, gone_member, route.threshold, now)
    for group, alert_id in zip(groups, ids, strict=True):
        applied = alert_store.apply_alert(db, route, alert_id, group.members, group.founding,
                                          current, now)
        for key in applied.joined:  # a new failing job wakes a snoozed alert
            triage_store.wake_if_snoozed(db, applied.alert_id, key, now)
        settle.add(applied.alert_id)
    for member, claim in kept:
        # a member that ended before ``start`` (so nothing regroups it) whose streak still
        # changed: a late failure just before its recovering pass, in the same batch as
        # another job's new claim. Its grouping facts did not change (else ``start`` would
        # be at most where it reached), so it is written where it is.
        if (member.alert_id, member.job_key) not in placed:
            alert_store.apply_alert(db, route, member.alert_id, [claim], Founding(), {}, now)
            settle.add(member.alert_id)
    for alert_id in sorted(settle):
        alert_store.settle(db, alert_id, now)
    changes.alerts |= settle
