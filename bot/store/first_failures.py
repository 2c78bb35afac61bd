"""What the bot's automatic retries look at: the jobs that failed lately, and what is known
about each failed run of a cell (infrastructure, or its log still being read)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlite_utils

from bot.domain.failure_classes import FailureClass
from bot.store.codec import to_iso
from bot.store.evidence import WANTED


def failed_lately(db: sqlite_utils.Database, since: datetime) -> list[tuple[str, str]]:
    """``(repo, job_key)`` of jobs with a failed run stored since ``since``.

    Every failed run stored with ``GITHUB_TOKEN`` set gets a ``job_evidence`` row (its
    lines, or its log queued), so its creation time is when the bot learnt of the
    failure; an index on it keeps this a range read however long the history.
    """
    return [(row[0], row[1]) for row in db.execute(
        "SELECT DISTINCT repo, job_key FROM job_evidence WHERE created_at >= ? "
        "ORDER BY repo, job_key", [to_iso(since)])]


def run_facts(db: sqlite_utils.Database, repo: str,
              job_ids: Sequence[int]) -> tuple[frozenset[int], frozenset[int]]:
    """Among failed runs ``job_ids``: those classified infrastructure, and those whose log
    is still queued for the reader (class not known yet)."""
    if not job_ids:
        return frozenset(), frozenset()
    marks = ",".join("?" * len(job_ids))
    infra: set[int] = set()
    reading: set[int] = set()
    for job_id, state, kind in db.execute(
            f"SELECT job_id, state, class FROM job_evidence WHERE repo = ? "
            f"AND job_id IN ({marks})", [repo, *job_ids]):
        if kind == FailureClass.INFRA.value:
            infra.add(job_id)
        elif state == WANTED:
            reading.add(job_id)
    return frozenset(infra), frozenset(reading)
