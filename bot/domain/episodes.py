"""A job key's history as episodes: each run of consecutive failing commits between two passes.

The streak engine keeps one alert member per episode long enough to alert. Episodes are
a function of the cells alone, so whatever order results arrive in (or whether they
come one by one or in one batch), the same cells give the same episodes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.domain.model import CellStatus, PlacedCell
from bot.domain.streak import Streak


@dataclass(frozen=True, slots=True)
class Episode:
    """Consecutive failure cells of one job key (cells without a signal skipped).

    ``last_green`` is the pass just before the first failure (None when history runs
    out first); ``recovery`` the pass just after the newest failure (None while the
    failures go on: the episode is ongoing).
    """

    failures: tuple[PlacedCell, ...]  # oldest first, at least one
    last_green: PlacedCell | None = None
    recovery: PlacedCell | None = None

    @property
    def first(self) -> PlacedCell:
        return self.failures[0]

    @property
    def newest(self) -> PlacedCell:
        return self.failures[-1]

    @property
    def length(self) -> int:
        return len(self.failures)

    @property
    def ongoing(self) -> bool:
        return self.recovery is None

    def reached(self, threshold: int) -> PlacedCell | None:
        """The failure that made the episode ``threshold`` long: when it began to alert."""
        return self.failures[threshold - 1] if self.length >= threshold else None

    def as_streak(self) -> Streak:
        """The episode as the streak walk from its recovery (or the head) would see it."""
        return Streak(self.length, self.recovery or self.newest, self.newest, self.first,
                      self.last_green)


def episodes(cells_oldest_first: Iterable[PlacedCell]) -> list[Episode]:
    """Split a job's cells, oldest first, into its episodes.

    Cells without a signal (pending, nothing ran) are skipped; a pass (success or flaky)
    ends an episode and is the next one's last green.
    """
    out: list[Episode] = []
    run: list[PlacedCell] = []
    green: PlacedCell | None = None
    for cell in cells_oldest_first:
        if not cell.status.has_signal:
            continue
        if cell.status is CellStatus.FAILURE:
            run.append(cell)
            continue
        if run:
            out.append(Episode(tuple(run), green, cell))
            run = []
        green = cell
    if run:
        out.append(Episode(tuple(run), green, None))
    return out
