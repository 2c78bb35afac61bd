"""Alert rules: which job streaks alert, and which alert each one belongs to.

Pure decisions over plain data; the store applies them. See ``ALERTS.md`` beside this
file for the rules in prose.

The rules are a function of the facts, never of the order they arrived in:

- every *episode* of a job (consecutive failing commits, see ``episodes.py``) that
  reaches the route's threshold is a **claim**: an alert member. It reached the
  threshold at a trunk position (``reached``); it ends at the pass that follows it;
- claims are grouped into alerts in trunk order (``group_claims``): a claim joins an
  alert that is open at the position where the claim reached the threshold and whose
  range overlaps its own, else it founds a new alert;
- an alert is resolved when every member ended, at the last member's recovery.

The incremental engine (``bot/ingest/alerting.py``) keeps the store equal to what
these rules give on all facts, by regrouping only from the earliest trunk position a
batch of facts changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.domain.durations import format_duration
from bot.domain.episodes import Episode
from bot.domain.model import PlacedCell
from bot.domain.streak import Streak


@dataclass(frozen=True, slots=True)
class Range:
    """A regression range ``(last_green, first_failing]`` in trunk positions.

    ``last_green`` None means no pass is known before the failures: the range is open
    towards the past.
    """

    last_green: int | None
    first_failing: int

    def overlaps(self, other: Range) -> bool:
        low = max(_low(self), _low(other))
        return low < min(self.first_failing, other.first_failing)

    def intersect(self, other: Range) -> Range | None:
        low = max(_low(self), _low(other))
        high = min(self.first_failing, other.first_failing)
        if low >= high:
            return None
        return Range(None if low == _NO_LOW else low, high)

    def width(self) -> float:
        return self.first_failing - _low(self)

    def contains(self, position: int) -> bool:
        return _low(self) < position <= self.first_failing


_NO_LOW = -(2**62)


def _low(r: Range) -> int:
    return _NO_LOW if r.last_green is None else r.last_green


def combined_range(ranges: Sequence[Range]) -> Range | None:
    """The intersection of member ranges: the commits that could have broken them all.

    If late results make the ranges disjoint, the narrowest stands in: an empty range
    would show no suspects at all.
    """
    if not ranges:
        return None
    current: Range | None = ranges[0]
    for other in ranges[1:]:
        current = current.intersect(other) if current is not None else None
    if current is not None:
        return current
    return min(ranges, key=lambda r: (r.width(), r.first_failing))


# --- claims: the episodes that alert -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """One job's episode that reached the threshold: an alert member, as the rules see it.

    ``reached`` is the trunk position of the failure that made it ``threshold`` long (the
    point in trunk history where the alert rule would first fire); ``recovery`` is the
    pass that ended it (None while it goes on).
    """

    key: str
    first: PlacedCell
    newest: PlacedCell
    length: int
    last_green: PlacedCell | None
    recovery: PlacedCell | None
    reached: int

    @property
    def range(self) -> Range:
        return Range(None if self.last_green is None else self.last_green.position,
                     self.first.position)

    @property
    def end(self) -> int | None:
        return None if self.recovery is None else self.recovery.position

    @property
    def order(self) -> tuple[int, str]:
        return (self.reached, self.key)

    def open_at(self, position: int) -> bool:
        """Whether the job was alerting at this trunk position (reached, not yet ended)."""
        return self.reached <= position and (self.end is None or self.end > position)

    def grouping_facts(self) -> tuple[object, ...]:
        """What the grouping reads; a change in anything else never moves a member."""
        return (self.reached, self.range, self.end)

    def as_streak(self) -> Streak:
        return Streak(self.length, self.recovery or self.newest, self.newest, self.first,
                      self.last_green)


def claim_of(key: str, episode: Episode, threshold: int) -> Claim | None:
    """The episode as a claim, when it is at least ``threshold`` failing commits long."""
    reached = episode.reached(threshold)
    if reached is None:
        return None
    return Claim(key, episode.first, episode.newest, episode.length, episode.last_green,
                 episode.recovery, reached.position)


def recent(claim: Claim, max_age: timedelta, now: datetime) -> bool:
    """The age gate: the newest failure is at most ``max_age`` old.

    A failure without a time (no job or commit timestamp known) counts as recent:
    dropping it would hide a real breakage on sources that omit times. Only claims that
    are not alerting yet are gated: an alert never loses a member by growing old.
    """
    when = claim.newest.time
    return when is None or now - when <= max_age


@dataclass(frozen=True, slots=True)
class Member:
    """A job's place in an alert, as last recorded.

    ``pinned``: the alert was resolved by hand, so the engine leaves the member as the
    person saw it (``manual_resolve.py`` decides what later failures mean).
    """

    alert_id: int
    job_key: str
    streak: int
    first_failing: PlacedCell
    newest_failing: PlacedCell
    last_green: PlacedCell | None
    recovered: bool = False
    reached: int | None = None
    recovery: PlacedCell | None = None
    pinned: bool = False

    @property
    def range(self) -> Range:
        return Range(
            None if self.last_green is None else self.last_green.position,
            self.first_failing.position,
        )

    def as_claim(self) -> Claim:
        reached = self.first_failing.position if self.reached is None else self.reached
        return Claim(self.job_key, self.first_failing, self.newest_failing, self.streak,
                     self.last_green, self.recovery, reached)

    def overlaps(self, first: int, newest: int) -> bool:
        return (self.first_failing.position <= newest
                and first <= self.newest_failing.position)


def alert_range(members: Sequence[Member]) -> Range | None:
    """The alert's regression range: the intersection of its members' ranges."""
    return combined_range([m.range for m in members])


# --- following a job's members through late facts -------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tracking:
    """A job's recorded members against its episodes now (within the stretch re-read).

    ``kept``: each member with the claim it follows now; ``fresh``: claims no member
    follows yet; ``withdrawn``: members whose failures no longer make a streak of the
    threshold (a rerun passed in between), or now belong to an older member's streak.
    """

    kept: tuple[tuple[Member, Claim], ...] = ()
    fresh: tuple[Claim, ...] = ()
    withdrawn: tuple[Withdrawn, ...] = ()


@dataclass(frozen=True, slots=True)
class Withdrawn:
    """A member late results took back, and the pass among its commits that did it."""

    member: Member
    green: PlacedCell | None


def track(key: str, episodes_now: Iterable[Episode], members: Sequence[Member],
          threshold: int) -> Tracking:
    """Match a job's members (not pinned) to its episodes now, oldest first.

    A member follows the qualifying episode that overlaps the commits it recorded; if
    several members overlap one episode (late results joined two streaks), the one that
    reached the threshold first keeps it.
    """
    found = list(episodes_now)
    claims = [c for e in found if (c := claim_of(key, e, threshold)) is not None]
    free = sorted(members, key=lambda m: (m.as_claim().reached, m.alert_id))
    kept: list[tuple[Member, Claim]] = []
    fresh: list[Claim] = []
    for claim in claims:
        match = next((m for m in free if m.overlaps(claim.first.position,
                                                    claim.newest.position)), None)
        if match is None:
            fresh.append(claim)
            continue
        free.remove(match)
        kept.append((match, claim))
    passes = sorted({c.position: c for e in found for c in (e.last_green, e.recovery)
                     if c is not None}.items())
    withdrawn = tuple(
        Withdrawn(m, next((cell for pos, cell in passes
                           if m.first_failing.position <= pos <= m.newest_failing.position),
                          None))
        for m in free)
    return Tracking(tuple(kept), tuple(fresh), withdrawn)


# --- grouping claims into alerts -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Founding:
    """What a claim that would found a new alert does instead (the manual-resolve rule):
    nothing (``hold``), reopen a hand-resolved alert, or open one that ``follows`` it."""

    hold: bool = False
    reopen: int | None = None
    follows: int | None = None


@dataclass
class Group:
    """One alert as the grouping builds it.

    ``alert_id`` is set for an alert that keeps members from before the regrouped
    stretch (``fixed``) and for a hand-resolved alert the rule reopens; new groups get
    an id when they are applied.
    """

    alert_id: int | None
    fixed: tuple[Claim, ...] = ()
    claims: list[Claim] = field(default_factory=list)
    founding: Founding = field(default_factory=Founding)

    @property
    def members(self) -> tuple[Claim, ...]:
        return (*self.fixed, *self.claims)

    @property
    def range(self) -> Range | None:
        return combined_range([c.range for c in self.members])

    @property
    def founded(self) -> tuple[int, str]:
        return min(c.order for c in self.members)

    def open_at(self, position: int) -> bool:
        return any(c.open_at(position) for c in self.members)


def _no_founding(claim: Claim) -> Founding:
    return Founding()


def group_claims(claims: Iterable[Claim],
                 fixed: Sequence[tuple[int, Sequence[Claim]]] = (),
                 found: Callable[[Claim], Founding] = _no_founding) -> list[Group]:
    """Group claims into alerts, in trunk order of the point each reached the threshold.

    A claim joins an alert that is open where it reached the threshold (some member is
    alerting there) and whose range overlaps its own; of several, the one whose range it
    narrows least, then the oldest. Otherwise it founds an alert, unless ``found`` says
    otherwise. ``fixed`` alerts already hold members from earlier in trunk order.
    """
    groups = [Group(alert_id, tuple(members)) for alert_id, members in fixed if members]
    for claim in sorted(claims, key=lambda c: c.order):
        own = claim.range
        candidates = [g for g in groups if g.open_at(claim.reached)
                      and (r := g.range) is not None and r.overlaps(own)]
        if candidates:
            best = min(candidates,
                       key=lambda g: (_overlap_gap(g.range, own), g.founded))  # type: ignore[arg-type]
            best.claims.append(claim)
            continue
        founding = found(claim)
        if founding.hold:
            continue
        groups.append(Group(founding.reopen, (), [claim], founding))
    return groups


def _overlap_gap(alert_range: Range, own: Range) -> float:
    inter = alert_range.intersect(own)
    return abs(alert_range.width() - (inter.width() if inter else 0))


def assign_alert_ids(groups: Sequence[Group], current: Mapping[tuple[str, int], int],
                     taken: Iterable[int]) -> list[int | None]:
    """An alert id for each group: its own, or the alert most of its claims were in.

    ``current`` maps (key, reached) of a regrouped claim to the alert it was recorded
    in. A new group keeps the oldest free alert (not fixed, not taken by an earlier
    group) one of its claims was in, else None (a new alert): the alert people saw
    first stays, and a regrouping that changes nothing moves nothing.
    """
    used = set(taken) | {g.alert_id for g in groups if g.alert_id is not None}
    out: list[int | None] = []
    for group in sorted(groups, key=lambda g: g.founded):
        if group.alert_id is not None:
            out.append(group.alert_id)
            continue
        had = sorted({a for c in group.claims
                      if (a := current.get((c.key, c.reached))) is not None} - used)
        chosen = had[0] if had else None
        if chosen is not None:
            used.add(chosen)
        out.append(chosen)
    order = sorted(range(len(groups)), key=lambda i: groups[i].founded)
    by_index = dict(zip(order, out, strict=True))
    return [by_index[i] for i in range(len(groups))]


def resolution(members: Sequence[Claim]) -> PlacedCell | None:
    """The pass that resolves an alert: the last member's recovery, once all ended."""
    if not members or any(c.recovery is None for c in members):
        return None
    return max((c.recovery for c in members if c.recovery is not None),
               key=lambda cell: cell.position)


# --- what the engine reports without alerting ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TooOld:
    """A streak long enough to alert whose newest failure is older than ``max_age``.

    The rule stays quiet on purpose (old breakages are not news), but someone feeding
    the bot old data sees no alert and must be told why.
    """

    route: str
    job_key: str
    streak: int
    newest_failure: PlacedCell
    max_age: timedelta

    def describe(self, now: datetime) -> str:
        """One line saying what was seen and why it did not alert."""
        when = self.newest_failure.time
        age = f"{format_duration(now - when)} old" if when is not None else "of unknown age"
        return (f"{self.job_key} (route {self.route}): {self.streak} failing commits in a "
                f"row, but the newest failure ({self.newest_failure.sha[:10]}) is {age}, "
                f"older than max_age {format_duration(self.max_age)}: no alert")
