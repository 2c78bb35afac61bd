"""Pure alert rules: ranges, the alert condition, and what a new streak does to open alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.alerts import (
    Join,
    Member,
    NoChange,
    Open,
    OpenAlert,
    Range,
    Recover,
    Update,
    alert_range,
    evaluate,
    meets_condition,
    member_from_streak,
)
from bot.domain.model import CellStatus, PlacedCell
from bot.domain.streak import Streak, compute_streak

NOW = datetime(2025, 12, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
F, S, K, P = CellStatus.FAILURE, CellStatus.SUCCESS, CellStatus.FLAKY, CellStatus.PENDING


def streak_of(statuses_by_position: dict[int, CellStatus],
              time: datetime | None = NOW) -> Streak:
    """The streak of cells given as {position: status}."""
    return compute_streak(
        PlacedCell(pos, f"s{pos}", status, time)
        for pos, status in sorted(statuses_by_position.items(), reverse=True)
    )


def failing(first: int, newest: int, green: int | None) -> Streak:
    """Failures on every position ``first..newest``, a pass at ``green`` (if any)."""
    statuses = {pos: F for pos in range(first, newest + 1)}
    if green is not None:
        statuses[green] = S
    return streak_of(statuses)


def member(alert_id: int, key: str, streak: Streak, recovered: bool = False) -> Member:
    m = member_from_streak(alert_id, key, streak)
    return Member(m.alert_id, m.job_key, m.streak, m.first_failing, m.newest_failing,
                  m.last_green, recovered)


# --- Range --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (Range(2, 5), Range(3, 8), Range(3, 5)),
        (Range(2, 5), Range(4, 5), Range(4, 5)),
        (Range(None, 5), Range(3, 9), Range(3, 5)),
        (Range(None, 5), Range(None, 7), Range(None, 5)),
        (Range(2, 5), Range(5, 9), None),  # (2,5] and (5,9] share no commit
        (Range(2, 3), Range(6, 9), None),
    ],
)
def test_range_intersection_and_overlap(a: Range, b: Range, expected: Range | None) -> None:
    assert a.intersect(b) == expected
    assert b.intersect(a) == expected
    assert a.overlaps(b) is (expected is not None)
    assert b.overlaps(a) is (expected is not None)


def test_range_contains_is_half_open() -> None:
    r = Range(2, 5)
    assert [p for p in range(0, 8) if r.contains(p)] == [3, 4, 5]
    assert Range(None, 5).contains(-1000)
    assert Range(2, 5).width() == 3


@st.composite
def _ranges(draw: st.DrawFn) -> Range:
    high = draw(st.integers(1, 12))
    low = draw(st.one_of(st.none(), st.integers(0, high - 1)))
    return Range(low, high)


@given(_ranges(), _ranges())
def test_range_intersection_is_set_intersection(a: Range, b: Range) -> None:
    both = {p for p in range(-1, 13) if a.contains(p) and b.contains(p)}
    inter = a.intersect(b)
    assert a.overlaps(b) is bool(both)
    if inter is None:
        assert not both
    else:
        assert {p for p in range(-1, 13) if inter.contains(p)} == both


# --- the alert condition ---------------------------------------------------------------------


def test_condition_needs_threshold() -> None:
    assert not meets_condition(failing(4, 5, 3), 3, DAY, NOW)
    assert meets_condition(failing(3, 5, 2), 3, DAY, NOW)


def test_condition_needs_ongoing_streak() -> None:
    ended = streak_of({1: F, 2: F, 3: F, 4: S})
    assert not meets_condition(ended, 3, DAY, NOW)
    # a pending cell after the failures does not end the streak
    assert meets_condition(streak_of({1: F, 2: F, 3: F, 4: P}), 3, DAY, NOW)


def test_condition_needs_recent_newest_failure() -> None:
    assert meets_condition(streak_of({1: F, 2: F, 3: F}, NOW - DAY), 3, DAY, NOW)
    assert not meets_condition(streak_of({1: F, 2: F, 3: F}, NOW - DAY - timedelta(seconds=1)),
                               3, DAY, NOW)
    # a failure whose time is unknown counts as recent
    assert meets_condition(streak_of({1: F, 2: F, 3: F}, None), 3, DAY, NOW)


def test_condition_age_is_judged_on_the_newest_failure() -> None:
    cells = [PlacedCell(3, "s3", F, NOW - timedelta(hours=1)),
             PlacedCell(2, "s2", F, NOW - 5 * DAY),
             PlacedCell(1, "s1", F, NOW - 6 * DAY)]
    assert meets_condition(compute_streak(cells), 3, DAY, NOW)


# --- evaluate --------------------------------------------------------------------------------


def test_condition_not_met_changes_nothing() -> None:
    decision = evaluate("inductor / a", failing(4, 5, 3), False, [])
    assert isinstance(decision, NoChange)


def test_first_job_opens_an_alert() -> None:
    streak = failing(3, 5, 2)
    assert evaluate("inductor / a", streak, True, []) == Open(streak)


def test_job_joins_an_open_alert_whose_range_overlaps() -> None:
    alert = OpenAlert(7, (member(7, "inductor / a", failing(3, 6, 1)),))  # range (1, 3]
    streak = failing(2, 6, None)  # (None, 2]: overlaps at 2
    assert evaluate("inductor / b", streak, True, [alert]) == Join(7, streak)


def test_job_opens_its_own_alert_when_no_range_overlaps() -> None:
    alert = OpenAlert(7, (member(7, "inductor / a", failing(3, 6, 2)),))  # (2, 3]
    streak = failing(6, 8, 5)  # (5, 6]
    assert evaluate("inductor / b", streak, True, [alert]) == Open(streak)


def test_of_several_overlapping_alerts_the_closest_range_wins() -> None:
    wide = OpenAlert(1, (member(1, "inductor / a", failing(9, 12, None)),))  # (None, 9]
    narrow = OpenAlert(2, (member(2, "inductor / b", failing(6, 12, 4)),))  # (4, 6]
    streak = failing(6, 12, 5)  # (5, 6]
    assert evaluate("inductor / c", streak, True, [wide, narrow]) == Join(2, streak)


def test_active_member_growing_streak_is_extended() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(3, 5, 2)),))
    grown = failing(3, 6, 2)
    assert evaluate("inductor / a", grown, True, [alert]) == Update(1, grown, extended=True)


def test_active_member_unchanged_is_no_change() -> None:
    streak = failing(3, 5, 2)
    alert = OpenAlert(1, (member(1, "inductor / a", streak),))
    assert isinstance(evaluate("inductor / a", streak, True, [alert]), NoChange)


def test_late_result_narrowing_the_range_updates_without_extending() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(2, 6, None)),))
    narrowed = failing(4, 6, 3)  # a late green at 3
    assert evaluate("inductor / a", narrowed, True, [alert]) == Update(1, narrowed,
                                                                       extended=False)


def test_active_member_stays_even_when_its_streak_drops_below_threshold() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(2, 6, None)),))
    shorter = failing(5, 6, 4)  # a late older green: not a recovery
    decision = evaluate("inductor / a", shorter, False, [alert])
    assert decision == Update(1, shorter, extended=False)


def test_pass_newer_than_newest_failure_recovers_and_resolves() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(3, 5, 2)),))
    after = streak_of({2: S, 3: F, 4: F, 5: F, 6: S})
    decision = evaluate("inductor / a", after, False, [alert])
    assert isinstance(decision, Recover)
    assert decision.alert_id == 1 and decision.green.sha == "s6" and decision.resolves


def test_flaky_rerun_at_newest_failing_commit_recovers() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(3, 5, 2)),))
    after = streak_of({2: S, 3: F, 4: F, 5: K})
    decision = evaluate("inductor / a", after, False, [alert])
    assert isinstance(decision, Recover) and decision.green.status is CellStatus.FLAKY


def test_recovery_does_not_resolve_while_another_member_fails() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(3, 5, 2)),
                          member(1, "inductor / b", failing(3, 5, 2))))
    decision = evaluate("inductor / a", streak_of({3: F, 4: F, 5: F, 6: S}), False, [alert])
    assert isinstance(decision, Recover) and not decision.resolves


def test_recovery_resolves_when_the_others_already_recovered() -> None:
    alert = OpenAlert(1, (member(1, "inductor / a", failing(3, 5, 2)),
                          member(1, "inductor / b", failing(3, 5, 2), recovered=True)))
    decision = evaluate("inductor / a", streak_of({3: F, 4: F, 5: F, 6: S}), False, [alert])
    assert isinstance(decision, Recover) and decision.resolves


def test_withdrawn_failure_is_not_a_recovery() -> None:
    # the newest failure became pending (a rerun was queued): the newest signal is the
    # old green, which is older than the recorded newest failure
    alert = OpenAlert(1, (member(1, "inductor / a", failing(3, 5, 2)),))
    withdrawn = streak_of({2: S, 3: P, 4: P, 5: P})
    assert isinstance(evaluate("inductor / a", withdrawn, False, [alert]), NoChange)


def test_recovered_member_failing_again_opens_or_joins_anew() -> None:
    old = member(1, "inductor / a", failing(3, 5, 2), recovered=True)
    alert = OpenAlert(1, (old, member(1, "inductor / b", failing(3, 9, 2))))
    again = failing(8, 10, 7)  # (7, 8]: no overlap with (2, 3]
    assert evaluate("inductor / a", again, True, [alert]) == Open(again)
    overlapping = failing(3, 10, None)
    assert evaluate("inductor / a", overlapping, True, [alert]) == Join(1, overlapping)


# --- alert_range -------------------------------------------------------------------------------


def test_alert_range_is_intersection_of_member_ranges() -> None:
    members = [member(1, "inductor / a", failing(5, 9, None)),  # (None, 5]
               member(1, "inductor / b", failing(5, 9, 2)),  # (2, 5]
               member(1, "inductor / c", failing(4, 9, 3))]  # (3, 4]
    assert alert_range(members) == Range(3, 4)


def test_recovered_members_keep_their_range() -> None:
    members = [member(1, "inductor / a", failing(5, 9, 1)),
               member(1, "inductor / b", failing(5, 7, 3), recovered=True)]
    assert alert_range(members) == Range(3, 5)


def test_disjoint_member_ranges_fall_back_to_the_narrowest() -> None:
    members = [member(1, "inductor / a", failing(5, 9, 1)),  # (1, 5]
               member(1, "inductor / b", failing(8, 9, 7))]  # (7, 8]
    assert alert_range(members) == Range(7, 8)


def test_alert_without_members_has_no_range() -> None:
    assert alert_range([]) is None
    assert OpenAlert(3, ()).range is None
