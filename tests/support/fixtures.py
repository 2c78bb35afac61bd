"""The repository's own test fixtures (``tests/fixtures/``): real payloads, read strictly.

Every read fails loudly when a file is missing, and a glob that matches nothing fails
the test instead of feeding it an empty list: a test must never pass because its
fixtures were not there. ``tests/fixtures/README.md`` says where each file came from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_path(*parts: str) -> Path:
    """The path of one fixture file; ``FileNotFoundError`` naming it when it is missing."""
    path = FIXTURES.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"test fixture {path} is missing")
    return path


def fixture_json(*parts: str) -> Any:
    """One fixture file, decoded."""
    return json.loads(fixture_path(*parts).read_text(encoding="utf-8"))


def fixture_files(folder: str, pattern: str) -> list[Path]:
    """The fixture files of ``folder`` matching ``pattern``, sorted; never empty."""
    paths = sorted((FIXTURES / folder).glob(pattern))
    if not paths:
        raise FileNotFoundError(f"no test fixtures match {FIXTURES / folder / pattern}")
    return paths
