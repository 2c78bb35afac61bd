"""The streak walk: newest to oldest over cells with a signal, failures until the first pass."""

from __future__ import annotations

from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from bot.domain.model import CellStatus, PlacedCell
from bot.domain.streak import compute_streak

F, S, K, P, N = (CellStatus.FAILURE, CellStatus.SUCCESS, CellStatus.FLAKY, CellStatus.PENDING,
                 CellStatus.NONE)


def cells(*statuses: CellStatus) -> list[PlacedCell]:
    """Cells newest first: the first status is at the highest position."""
    top = len(statuses)
    return [PlacedCell(top - i, f"sha{top - i}", s) for i, s in enumerate(statuses)]


def test_empty_history_has_no_streak() -> None:
    streak = compute_streak([])
    assert streak.length == 0 and not streak.ongoing
    assert streak.newest_signal is None and streak.last_green is None
    assert streak.first_failure is None and streak.newest_failure is None


def test_failures_counted_until_first_pass() -> None:
    streak = compute_streak(cells(F, F, F, S, F, F))
    assert streak.length == 3 and streak.ongoing
    assert streak.newest_failure is not None and streak.newest_failure.sha == "sha6"
    assert streak.first_failure is not None and streak.first_failure.sha == "sha4"
    assert streak.last_green is not None and streak.last_green.sha == "sha3"
    assert streak.newest_signal == streak.newest_failure


def test_cells_without_signal_are_skipped_not_counted() -> None:
    streak = compute_streak(cells(P, F, N, F, P, N, F, S))
    assert streak.length == 3
    assert streak.newest_signal is not None and streak.newest_signal.sha == "sha7"
    assert streak.first_failure is not None and streak.first_failure.sha == "sha2"
    assert streak.last_green is not None and streak.last_green.sha == "sha1"


def test_flaky_is_a_pass_and_ends_the_streak() -> None:
    streak = compute_streak(cells(F, F, K, F, F, F))
    assert streak.length == 2
    assert streak.last_green is not None and streak.last_green.status is CellStatus.FLAKY


def test_newest_signal_a_pass_means_no_ongoing_streak() -> None:
    streak = compute_streak(cells(P, S, F, F, F))
    assert streak.length == 0 and not streak.ongoing
    assert streak.newest_signal is not None and streak.newest_signal.sha == "sha4"
    assert streak.last_green == streak.newest_signal
    assert streak.newest_failure is None


def test_history_running_out_leaves_last_green_unknown() -> None:
    streak = compute_streak(cells(F, N, F))
    assert streak.length == 2 and streak.last_green is None
    assert streak.first_failure is not None and streak.first_failure.sha == "sha1"


def test_only_no_signal_cells() -> None:
    streak = compute_streak(cells(P, N, P))
    assert streak.length == 0 and streak.newest_signal is None


def test_walk_stops_at_the_first_pass() -> None:
    """The walk reads lazily: cells older than the ending pass are never pulled."""
    consumed: list[int] = []

    def lazy() -> Iterator[PlacedCell]:
        for cell in cells(F, P, F, S, *([F] * 1000)):
            consumed.append(cell.position)
            yield cell

    streak = compute_streak(lazy())
    assert streak.length == 2
    assert len(consumed) == 4


_status = st.sampled_from([F, F, S, K, P, N])


@given(st.lists(_status, max_size=30))
def test_matches_reference_walk(statuses: list[CellStatus]) -> None:
    placed = cells(*statuses)
    signal = [c for c in placed if c.status in (F, S, K)]
    expected = 0
    while expected < len(signal) and signal[expected].status is F:
        expected += 1
    streak = compute_streak(placed)
    assert streak.length == expected
    assert streak.newest_signal == (signal[0] if signal else None)
    assert streak.last_green == (signal[expected] if expected < len(signal) else None)
    if expected:
        assert streak.newest_failure == signal[0]
        assert streak.first_failure == signal[expected - 1]
    else:
        assert streak.newest_failure is None and streak.first_failure is None
