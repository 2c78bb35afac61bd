"""Pure alert rules: ranges, episodes, claims, following members, grouping into alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.alerts import (
    Claim,
    Founding,
    Member,
    Range,
    alert_range,
    assign_alert_ids,
    claim_of,
    combined_range,
    group_claims,
    recent,
    resolution,
    track,
)
from bot.domain.episodes import Episode, episodes
from bot.domain.model import CellStatus, PlacedCell

NOW = datetime(2025, 12, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
F, S, K, P, N = (CellStatus.FAILURE, CellStatus.SUCCESS, CellStatus.FLAKY, CellStatus.PENDING,
                 CellStatus.NONE)


def cells(text: str, time: datetime | None = NOW) -> list[PlacedCell]:
    """Cells at positions 1, 2, ... from letters: F fail, S pass, K flaky, P pending, . none."""
    status = {"F": F, "S": S, "K": K, "P": P, ".": N}
    return [PlacedCell(i, f"s{i}", status[ch], time) for i, ch in enumerate(text, start=1)]


def claim(key: str, text: str, threshold: int = 3) -> Claim:
    """The one claim of a job whose cells are ``text``."""
    (only,) = [c for e in episodes(cells(text)) if (c := claim_of(key, e, threshold))]
    return only


def member(alert_id: int, c: Claim) -> Member:
    return Member(alert_id, c.key, c.length, c.first, c.newest, c.last_green,
                  c.recovery is not None, c.reached, c.recovery)


# --- episodes ---------------------------------------------------------------------------------


def test_episodes_are_runs_of_failures_between_passes() -> None:
    found = episodes(cells("SFF.FSKFFPF"))
    assert [(e.first.position, e.newest.position, e.length) for e in found] == [(2, 5, 3),
                                                                                 (8, 11, 3)]
    first, second = found
    assert first.last_green is not None and first.last_green.position == 1
    assert first.recovery is not None and first.recovery.position == 6
    assert second.last_green is not None and second.last_green.position == 7  # flaky passes
    assert second.ongoing and second.recovery is None


def test_an_episode_without_an_earlier_pass_is_open_towards_the_past() -> None:
    (only,) = episodes(cells("FFS"))
    assert only.last_green is None and only.length == 2


def test_reached_is_the_failure_that_made_the_streak_long_enough() -> None:
    (only,) = episodes(cells("SF.FFF"))
    reached = only.reached(3)
    assert reached is not None and reached.position == 5
    assert only.reached(5) is None


def test_claims_need_the_threshold() -> None:
    (short, long) = episodes(cells("FFSFFF"))
    assert claim_of("k", short, 3) is None
    c = claim_of("k", long, 3)
    assert c is not None and (c.reached, c.range, c.end) == (6, Range(3, 4), None)


def test_the_age_gate_looks_at_the_newest_failure() -> None:
    old = claim_of("k", Episode(tuple(cells("FFF", NOW - DAY - timedelta(seconds=1)))), 3)
    fresh = claim_of("k", Episode(tuple(cells("FFF", NOW - DAY))), 3)
    unknown = claim_of("k", Episode(tuple(cells("FFF", None))), 3)
    assert old is not None and fresh is not None and unknown is not None
    assert not recent(old, DAY, NOW) and recent(fresh, DAY, NOW) and recent(unknown, DAY, NOW)


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


# --- following members -------------------------------------------------------------------------


def test_a_member_follows_its_streak_when_late_results_extend_it() -> None:
    was = member(1, claim("k", "SFFF"))
    tracking = track("k", episodes(cells("FFFF")), [was], 3)  # an older failure came in
    ((kept, now),) = tracking.kept
    assert kept is was and (now.first.position, now.length, now.last_green) == (1, 4, None)
    assert tracking.fresh == () and tracking.withdrawn == ()


def test_a_pass_that_splits_a_streak_leaves_the_member_the_older_part() -> None:
    """Recover at N, fail at N+1: the member ends at N, the later failures are new."""
    was = member(1, claim("k", "SFFF.F"))  # 5 was unknown: one streak of four
    tracking = track("k", episodes(cells("SFFFSFFF")), [was], 3)
    ((_, now),) = tracking.kept
    assert (now.newest.position, now.end) == (4, 5)
    (fresh,) = tracking.fresh
    assert (fresh.first.position, fresh.reached) == (6, 8)


def test_a_member_whose_failures_no_longer_reach_the_threshold_is_withdrawn() -> None:
    was = member(1, claim("k", "SFFF"))
    tracking = track("k", episodes(cells("SFKF")), [was], 3)  # a rerun at 3 passed
    assert tracking.kept == () and tracking.fresh == ()
    ((gone, green),) = [(w.member, w.green) for w in tracking.withdrawn]
    assert gone is was and green is not None and (green.position, green.status) == (3, K)


def test_of_two_members_joined_by_late_results_the_older_keeps_the_streak() -> None:
    older = member(1, claim_at("k", "SFFFSFFF", 4))
    newer = member(2, claim_at("k", "SFFFSFFF", 8))
    tracking = track("k", episodes(cells("SFFFFFFF")), [newer, older], 3)  # 5 failed after all
    ((kept, _),) = tracking.kept
    assert kept is older and [w.member for w in tracking.withdrawn] == [newer]


def claim_at(key: str, text: str, newest: int) -> Claim:
    return next(c for e in episodes(cells(text)) if (c := claim_of(key, e, 3))
                and c.newest.position == newest)


# --- grouping ---------------------------------------------------------------------------------


def test_a_claim_joins_an_alert_open_where_it_reached_the_threshold_with_an_overlapping_range(
        ) -> None:
    a = claim("a", "SFFFF")  # reached at 4, range (1, 2]
    b = claim("b", "SFFFF")
    (group,) = group_claims([b, a])
    assert [c.key for c in group.members] == ["a", "b"]


def test_disjoint_ranges_open_separate_alerts() -> None:
    a = claim("a", "SFFFFFF")  # (1, 2]
    b = claim("b", "SSSSFFF")  # (4, 5]
    assert len(group_claims([a, b])) == 2


def test_an_alert_that_ended_before_a_claim_reached_the_threshold_is_not_joined() -> None:
    a = claim("a", "SFFFS")  # alerting at 4, ended at 5
    b = claim("b", "S.FFFF")  # reached at 6: a's alert is over by then
    assert a.range.overlaps(b.range)
    assert len(group_claims([a, b])) == 2
    c = claim("c", "SFFF")  # reached at 4: open then, joins
    assert len(group_claims([a, c])) == 1


def test_of_several_open_alerts_the_one_whose_range_it_narrows_least_wins() -> None:
    wide = claim("a", "FFFFFFFFFF")  # (None, 1]... open towards the past
    narrow = claim("b", "SSSSSFFFFF")  # (5, 6]
    joiner = claim("c", "SSSSSFFFFF".replace("FFFFF", "FFFF") + "F")
    groups = group_claims([wide, narrow, joiner])
    assert len(groups) == 2
    (with_joiner,) = [g for g in groups if any(c.key == "c" for c in g.members)]
    assert {c.key for c in with_joiner.members} == {"b", "c"}


def test_grouping_does_not_depend_on_the_order_claims_are_given_in() -> None:
    found = [claim("a", "SFFFF"), claim("b", "SSFFF"), claim("c", "SSSSSSFFF")]
    first = group_claims(found)
    second = group_claims(list(reversed(found)))
    assert [[c.key for c in g.members] for g in first] == [
        [c.key for c in g.members] for g in second]


def test_a_founding_rule_can_hold_reopen_or_follow() -> None:
    a = claim("a", "SFFF")
    assert group_claims([a], found=lambda c: Founding(hold=True)) == []
    (reopened,) = group_claims([a], found=lambda c: Founding(reopen=9))
    assert reopened.alert_id == 9
    (follows,) = group_claims([a], found=lambda c: Founding(follows=4))
    assert follows.alert_id is None and follows.founding.follows == 4


def test_fixed_alerts_take_joins_and_keep_their_ids() -> None:
    a = claim("a", "SFFFF")
    b = claim("b", "SFFFF")
    (group,) = group_claims([b], fixed=[(7, [a])])
    assert group.alert_id == 7 and [c.key for c in group.members] == ["a", "b"]


def test_groups_keep_the_alerts_their_members_were_in() -> None:
    a, b = claim("a", "SFFFF"), claim("b", "SSSSSSFFF")
    groups = group_claims([a, b])
    current = {(a.key, a.reached): 5, (b.key, b.reached): 3}
    assert assign_alert_ids(groups, current, taken=set()) == [5, 3]
    assert assign_alert_ids(groups, current, taken={5}) == [None, 3]


def test_an_alert_resolves_at_the_last_members_recovery() -> None:
    a, b = claim("a", "SFFFS"), claim("b", "SFFFFFS")
    assert resolution([a]) is not None and resolution([a]).position == 5  # type: ignore[union-attr]
    green = resolution([a, b])
    assert green is not None and green.position == 7
    assert resolution([a, claim("c", "SFFF")]) is None
    assert resolution([]) is None


def test_alert_range_is_the_intersection_of_member_ranges() -> None:
    assert combined_range([Range(1, 5), Range(3, 8)]) == Range(3, 5)
    assert combined_range([Range(1, 3), Range(6, 9)]) == Range(1, 3)  # disjoint: narrowest
    assert combined_range([]) is None
    a = claim("a", "SFFF")
    assert alert_range([member(1, a)]) == a.range


@pytest.mark.parametrize("text", ["SFFF", "FFF", "SFF.F", "KFFF"])
def test_a_member_round_trips_to_its_claim(text: str) -> None:
    c = claim("k", text)
    assert member(1, c).as_claim().grouping_facts() == c.grouping_facts()
