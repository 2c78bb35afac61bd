"""After a manual resolve: reopen on a newer failure of the same breakage, hold on old news,
follow with a new alert when the job passed in between. Checked against an oracle."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.alerts import Member
from bot.domain.manual_resolve import (
    Follow,
    Hold,
    Reopen,
    ResolvedByHand,
    after_manual_resolve,
)
from bot.domain.model import CellStatus, PlacedCell
from bot.domain.streak import Streak


def cell(position: int, status: CellStatus = CellStatus.FAILURE) -> PlacedCell:
    return PlacedCell(position, f"sha{position}", status)


def streak(last_green: int | None, first: int, newest: int) -> Streak:
    return Streak(length=newest - first + 1, newest_signal=cell(newest),
                  newest_failure=cell(newest), first_failure=cell(first),
                  last_green=None if last_green is None else cell(last_green,
                                                                  CellStatus.SUCCESS))


def resolved(alert_id: int, last_green: int | None, first: int, newest: int) -> ResolvedByHand:
    return ResolvedByHand(alert_id, Member(
        alert_id=alert_id, job_key="inductor / test (x)", streak=newest - first + 1,
        first_failing=cell(first), newest_failing=cell(newest),
        last_green=None if last_green is None else cell(last_green, CellStatus.SUCCESS)))


def test_a_newer_failure_of_the_same_breakage_reopens() -> None:
    now = streak(4, 5, 9)
    assert after_manual_resolve(now, [resolved(1, 4, 5, 7)]) == Reopen(1, now)


def test_a_late_result_the_person_already_saw_holds() -> None:
    assert after_manual_resolve(streak(4, 5, 7), [resolved(1, 4, 5, 7)]) == Hold(1)


def test_a_new_breakage_after_a_pass_follows_the_resolved_alert() -> None:
    assert after_manual_resolve(streak(8, 9, 11), [resolved(1, 4, 5, 7)]) == Follow(1)


def test_no_hand_resolved_alert_leaves_the_rules_alone() -> None:
    assert after_manual_resolve(streak(4, 5, 7), []) is None


positions = st.integers(min_value=0, max_value=30)


@given(st.lists(st.tuples(positions, positions, positions), min_size=1, max_size=4),
       positions, positions, positions)
def test_matches_an_oracle(alerts: list[tuple[int, int, int]], green: int, first: int,
                           newest: int) -> None:
    """Oracle: same breakage means the commit ranges (green, first] share a commit."""
    if not green < first <= newest:
        return
    entries = []
    for n, (g, f, w) in enumerate(alerts, start=1):
        if g < f <= w:
            entries.append(resolved(n, g, f, w))
    if not entries:
        return
    now = streak(green, first, newest)
    decided = after_manual_resolve(now, entries)
    same = [e for e in entries
            if set(range(e.member.last_green.position + 1, e.member.first_failing.position + 1))
            & set(range(green + 1, first + 1))]  # type: ignore[union-attr]
    if same:
        first_same = same[0]
        if newest > first_same.member.newest_failing.position:
            assert decided == Reopen(first_same.alert_id, now)
        else:
            assert decided == Hold(first_same.alert_id)
    else:
        assert decided == Follow(entries[0].alert_id)
