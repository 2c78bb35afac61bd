"""Alert rules: when a job's streak opens, joins, extends or recovers an alert.

Pure decisions over plain data; the store applies them. See ``ALERTS.md`` beside this
file for the rules in prose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.durations import format_duration
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


@dataclass(frozen=True, slots=True)
class Member:
    """A job's place in an alert, as last recorded."""

    alert_id: int
    job_key: str
    streak: int
    first_failing: PlacedCell
    newest_failing: PlacedCell
    last_green: PlacedCell | None
    recovered: bool = False

    @property
    def range(self) -> Range:
        return Range(
            None if self.last_green is None else self.last_green.position,
            self.first_failing.position,
        )


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An open alert of one route with its members."""

    id: int
    members: tuple[Member, ...]

    @property
    def range(self) -> Range | None:
        return alert_range(self.members)


# --- outcomes of evaluating one job key -------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoChange:
    reason: str


@dataclass(frozen=True, slots=True)
class Open:
    """The job meets the alert condition and no open alert's range overlaps its own."""

    streak: Streak


@dataclass(frozen=True, slots=True)
class Join:
    """The job meets the condition and joins an open alert whose range overlaps."""

    alert_id: int
    streak: Streak


@dataclass(frozen=True, slots=True)
class Update:
    """An active member's streak changed: grew (``extended``), or late results moved it."""

    alert_id: int
    streak: Streak
    extended: bool


@dataclass(frozen=True, slots=True)
class Recover:
    """A pass on a commit at or after the member's newest failure ended its streak.

    ``resolves`` is True when every other member has already recovered.
    """

    alert_id: int
    green: PlacedCell
    resolves: bool


Decision = NoChange | Open | Join | Update | Recover


def meets_condition(streak: Streak, threshold: int, max_age: timedelta, now: datetime) -> bool:
    """The alert condition: streak >= threshold, still ongoing, newest failure recent.

    A failure without a time (no job or commit timestamp known) counts as recent:
    dropping it would hide a real breakage on sources that omit times.
    """
    if streak.length < threshold or streak.newest_failure is None:
        return False
    when = streak.newest_failure.time
    return when is None or now - when <= max_age


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


def too_old(streak: Streak, threshold: int, max_age: timedelta, now: datetime) -> bool:
    """Streak >= threshold and ongoing, but its newest failure is older than ``max_age``."""
    if streak.length < threshold or streak.newest_failure is None:
        return False
    when = streak.newest_failure.time
    return when is not None and now - when > max_age


def evaluate(
    job_key: str,
    streak: Streak,
    condition_met: bool,
    open_alerts: Sequence[OpenAlert],
) -> Decision:
    """Decide what one job key's new streak means for the route's open alerts.

    Order matters: a job already active in an alert is updated or recovered there and
    never opens a second alert; only a job that is not active anywhere may open or join.
    """
    for alert in open_alerts:
        for member in alert.members:
            if member.job_key == job_key and not member.recovered:
                return _evaluate_member(alert, member, streak)
    if not condition_met:
        return NoChange("condition not met")
    assert streak.first_failure is not None
    own = _streak_range(streak)
    candidates = [a for a in open_alerts if (r := a.range) is not None and r.overlaps(own)]
    if not candidates:
        return Open(streak)
    # several overlap: the one whose range is closest to the job's own is the best guess
    best = min(candidates, key=lambda a: (_overlap_gap(a.range, own), a.id))  # type: ignore[arg-type]
    return Join(best.id, streak)


def _evaluate_member(alert: OpenAlert, member: Member, streak: Streak) -> Decision:
    newest = streak.newest_signal
    if not streak.ongoing:
        if newest is not None and newest.position >= member.newest_failing.position:
            others_recovered = all(
                m.recovered for m in alert.members if m.job_key != member.job_key
            )
            return Recover(alert.id, newest, others_recovered)
        return NoChange("failure signal withdrawn (rerun pending); waiting for a result")
    assert streak.newest_failure is not None and streak.first_failure is not None
    extended = streak.newest_failure.position > member.newest_failing.position
    moved = (
        streak.length != member.streak
        or streak.first_failure.sha != member.first_failing.sha
        or streak.newest_failure.sha != member.newest_failing.sha
        or _sha(streak.last_green) != _sha(member.last_green)
    )
    if not moved:
        return NoChange("streak unchanged")
    return Update(alert.id, streak, extended)


def _sha(cell: PlacedCell | None) -> str | None:
    return None if cell is None else cell.sha


def _streak_range(streak: Streak) -> Range:
    assert streak.first_failure is not None
    lg = streak.last_green.position if streak.last_green is not None else None
    return Range(lg, streak.first_failure.position)


def _overlap_gap(alert_range: Range, own: Range) -> float:
    inter = alert_range.intersect(own)
    return abs(alert_range.width() - (inter.width() if inter else 0))


def member_from_streak(alert_id: int, job_key: str, streak: Streak) -> Member:
    """The member record a decision writes for an ongoing streak."""
    assert streak.first_failure is not None and streak.newest_failure is not None
    return Member(
        alert_id=alert_id,
        job_key=job_key,
        streak=streak.length,
        first_failing=streak.first_failure,
        newest_failing=streak.newest_failure,
        last_green=streak.last_green,
    )


def alert_range(members: Sequence[Member]) -> Range | None:
    """The alert's regression range: the intersection of its members' ranges.

    Recovered members keep the range they had, since the change that broke them is
    still the best evidence. If late results make the ranges disjoint, the narrowest
    member range stands in: an empty range would show no suspects at all.
    """
    if not members:
        return None
    ranges = [m.range for m in members]
    current: Range | None = ranges[0]
    for other in ranges[1:]:
        current = current.intersect(other) if current is not None else None
    if current is not None:
        return current
    return min(ranges, key=lambda r: (r.width(), r.first_failing))
