"""The sender posts a new alert before it edits older ones in the same channel.

Found by ``bench/load.py``: with edits paced at one per second per channel, a new
alert's parent waited behind every pending edit of older alerts (4 s at the median).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.ingest.hud import parse_hud_page
from bot.runtime import Bot
from bot.store.db import Store
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import CHANNEL, slack_settings
from tests.support.clock import FakeClock
from tests.support.server import settings_for
from tests.support.trunk import REPO, Trunk, sharded

JOBS = {key: sharded("inductor", key, 1)[0] for key in ("a_huggingface", "b_timm", "c_torchbench")}
FIRST_RED = {"a_huggingface": 2, "b_timm": 6, "c_torchbench": 10}  # three separate ranges


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def trunk() -> Trunk:
    history = Trunk.linear(13, list(JOBS.values()))
    for key, name in JOBS.items():
        for i in range(13):
            history.set(i, name, "failure" if i >= FIRST_RED[key] else "success")
    return history


def feed(bot: Bot, clock: FakeClock, history: Trunk, newest: int) -> None:
    page = parse_hud_page(history.hud_page(newest), REPO, "main")
    clock.set(history.times[newest] + timedelta(minutes=90))
    bot.ingestor.commits(REPO, "main", list(reversed(page.commits)))
    bot.ingestor.results(page.results)


def test_a_new_alert_is_posted_before_edits_of_older_ones(tmp_path: Path,
                                                          slack: FakeSlack) -> None:
    history = trunk()
    clock = FakeClock(history.times[0])
    settings = settings_for(tmp_path, **slack_settings(slack.url))
    Store(settings.database_path).migrate()
    bot = Bot(settings, clock=clock, sender_options={"pace_s": 0.0})  # passes run here
    try:
        feed(bot, clock, history, 9)  # a and b open, c not yet
        while bot.sender.run_once():
            pass
        assert [m["metadata"]["event_payload"]["alert_id"] for m in slack.messages(CHANNEL)] \
            == [1, 2]
        feed(bot, clock, history, 12)  # a and b extended (edits due), c opens: alert 3
        before = len(slack.calls)
        bot.sender.run_once()
        first = slack.calls[before]
        assert first.method == "chat.postMessage"
        assert first.params["metadata"]["event_payload"]["alert_id"] == 3
        edited = [c.params["ts"] for c in slack.calls[before:] if c.method == "chat.update"]
        assert len(edited) == 2, "the older alerts were edited in the same pass"
    finally:
        bot.store.close()
