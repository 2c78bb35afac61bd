"""What a failing job means for an alert a person resolved by hand while it still failed.

The Resolve button's confirmation promises: "if its jobs fail on a newer commit it
reopens here; a new breakage opens a new alert that links back". One rule keeps it,
asked only when the alert rules would open a new alert for the job:

- the job's streak is the **same breakage** as in a hand-resolved alert (its range
  overlaps the range the alert recorded for the job) and it failed on a commit **newer**
  than the alert had seen: **reopen** that alert (same message, a "reopened" reply);
- the same breakage but no newer failing commit (a late result the person already had
  in front of them): **hold**, nothing opens;
- otherwise (the job passed in between, so this is a new breakage): open a new alert,
  whose thread **follows** the newest hand-resolved alert of the job.

Pure: the store supplies the hand-resolved alerts, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.alerts import Member, Range
from bot.domain.streak import Streak


@dataclass(frozen=True, slots=True)
class ResolvedByHand:
    """An alert a person resolved while ``member`` (this job) was still failing in it."""

    alert_id: int
    member: Member


@dataclass(frozen=True, slots=True)
class Reopen:
    alert_id: int
    streak: Streak


@dataclass(frozen=True, slots=True)
class Hold:
    """Same breakage, nothing newer than what the person resolved: no alert opens."""

    alert_id: int


@dataclass(frozen=True, slots=True)
class Follow:
    """A new breakage: open a new alert whose thread links ``previous``."""

    previous: int


ManualDecision = Reopen | Hold | Follow | None


def after_manual_resolve(streak: Streak, resolved: Sequence[ResolvedByHand]) -> ManualDecision:
    """Decide for a job whose streak would open a new alert (``resolved``: newest first).

    None: no hand-resolved alert ever had this job, so the alert rules stand as they are.
    """
    if streak.first_failure is None or streak.newest_failure is None or not resolved:
        return None
    own = Range(None if streak.last_green is None else streak.last_green.position,
                streak.first_failure.position)
    for entry in resolved:
        if entry.member.range.overlaps(own):
            if streak.newest_failure.position > entry.member.newest_failing.position:
                return Reopen(entry.alert_id, streak)
            return Hold(entry.alert_id)
    return Follow(resolved[0].alert_id)
