"""The streak of one job key: consecutive failing commits, newest first, until a pass."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain.model import CellStatus, PlacedCell


@dataclass(frozen=True, slots=True)
class Streak:
    """The ongoing run of failures of one job key.

    ``length`` counts failure cells walking from the newest commit towards older ones,
    skipping cells without a signal, until the first pass. ``newest_signal`` is the
    newest cell with a signal (None when the job never produced one). ``last_green``
    is the pass that ended the walk, None when history ran out first.
    """

    length: int
    newest_signal: PlacedCell | None
    newest_failure: PlacedCell | None
    first_failure: PlacedCell | None
    last_green: PlacedCell | None

    @property
    def ongoing(self) -> bool:
        return self.length > 0


def compute_streak(cells_newest_first: Iterable[PlacedCell]) -> Streak:
    """Walk cells newest to oldest and stop at the first pass.

    The input may be a lazy iterator over the store: the walk consumes only as many
    cells as the streak is long (plus the pass that ends it), so an update never
    rescans a job's whole history.
    """
    newest_signal: PlacedCell | None = None
    newest_failure: PlacedCell | None = None
    first_failure: PlacedCell | None = None
    length = 0
    for cell in cells_newest_first:
        if not cell.status.has_signal:
            continue
        if newest_signal is None:
            newest_signal = cell
        if cell.status is CellStatus.FAILURE:
            length += 1
            newest_failure = newest_failure or cell
            first_failure = cell
            continue
        return Streak(length, newest_signal, newest_failure, first_failure, cell)
    return Streak(length, newest_signal, newest_failure, first_failure, None)
