"""Shared fixtures: a migrated store on a temporary SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store.db import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A fully migrated store in its own file, closed after the test."""
    s = Store(tmp_path / "bot.db")
    s.migrate()
    try:
        yield s
    finally:
        s.close()
