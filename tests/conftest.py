"""Shared fixtures: a migrated store on a temporary SQLite file; Hypothesis settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from bot.store.db import Store

# ``make test`` runs on busy 2-core machines: a property test is judged on the examples it
# finds, never on how long one took, and it runs the same examples every time (a CI run
# must not pass or fail by luck). HYPOTHESIS_PROFILE=explore searches wider, randomly.
settings.register_profile("repeatable", deadline=None, derandomize=True, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", deadline=None, max_examples=1000, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fully migrated store in its own file, closed after the test."""
    s = Store(tmp_path / "bot.db")
    s.migrate()
    try:
        yield s
    finally:
        s.close()
