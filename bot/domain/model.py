"""Plain data the domain rules work on: job results, commits, cells and streaks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class CellStatus(StrEnum):
    """What one job key says about one commit once shards and attempts are merged."""

    FAILURE = "failure"
    FLAKY = "flaky"  # failed, then passed on a rerun: a pass for streaks, shown as flaky
    PENDING = "pending"  # unfinished shards and no failure: no signal yet
    SUCCESS = "success"
    NONE = "none"  # nothing ran, or only cancelled/skipped/neutral: no signal

    @property
    def has_signal(self) -> bool:
        return self in (CellStatus.FAILURE, CellStatus.FLAKY, CellStatus.SUCCESS)

    @property
    def is_pass(self) -> bool:
        return self in (CellStatus.FLAKY, CellStatus.SUCCESS)


@dataclass(frozen=True, slots=True)
class Commit:
    """One commit on a watched branch. Position is assigned by the store (trunk order)."""

    sha: str
    title: str = ""
    author: str = ""
    pr_number: int | None = None
    time: datetime | None = None
    url: str | None = None


@dataclass(slots=True)
class JobResult:
    """One attempt of one shard of one job on one commit, as a CI source reported it.

    ``job_name`` is the job's own name without the workflow prefix and *with* shard
    numbers (``cuda12.8 / test (inductor_huggingface, 2, 3, linux.g5)``); the job key
    that groups shards is derived from it (see ``jobkey.job_key``).
    ``job_id`` identifies this attempt at its source (GitHub job id, HUD job id);
    redeliveries of the same id replace the earlier record by status precedence.

    Treated as immutable (``dataclasses.replace`` makes a changed copy), but not frozen:
    replay and back-fill build hundreds of thousands of them, and a frozen dataclass is
    about three times slower to build.
    """

    repo: str
    sha: str
    workflow: str
    job_name: str
    job_id: int
    status: str  # queued | waiting | in_progress | pending | completed
    conclusion: str | None = None  # success | failure | timed_out | cancelled | flaky | ...
    run_id: int | None = None
    attempt: int = 1
    branch: str | None = None
    html_url: str | None = None
    log_url: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failure_lines: tuple[str, ...] = field(default_factory=tuple)
    source: str = "github"  # github | hud | poller | bisect


@dataclass(frozen=True, slots=True)
class PlacedCell:
    """A cell at its place in trunk order, as the streak walk sees it."""

    position: int
    sha: str
    status: CellStatus
    time: datetime | None = None  # when the signal happened (job completion, else commit time)
