"""The Slack surfaces' fixtures: a fake workspace and a running bot with one open alert."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import broken_trunk
from tests.support.slack_side import SlackSide, fake_workspace, start


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with fake_workspace() as server:
        yield server


@pytest.fixture
def slack(tmp_path: Path, fake: FakeSlack) -> Iterator[SlackSide]:
    with start(tmp_path, fake, broken_trunk(), 7) as side:
        yield side
