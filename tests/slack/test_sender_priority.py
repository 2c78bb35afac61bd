"""The sender posts a new alert before it edits older ones or replies in their threads.

Found by ``bench/load.py``: with calls paced at one per second per channel, a new
alert's parent waited behind every pending edit (4 s at the median) and every pending
thread reply (10 s at p99) of older alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.ingest.hud import parse_hud_page
from bot.runtime import Bot
from bot.slack.triage import Request
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


class OpensAnAlertDuringTheFirstReply:
    """Wraps the Slack API: while the sender posts its first thread reply, an alert opens."""

    def __init__(self, bot: Bot, open_alert: Callable[[], None]) -> None:
        self.inner = bot.sender.api
        self.open_alert = open_alert
        self.done = False

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        answer = self.inner.call(method, **params)
        if method == "chat.postMessage" and params.get("thread_ts") and not self.done:
            self.done = True
            self.open_alert()
        return answer


def test_an_alert_opening_while_replies_go_out_is_posted_before_the_rest(
        tmp_path: Path, slack: FakeSlack) -> None:
    history = trunk()
    clock = FakeClock(history.times[0])
    settings = settings_for(tmp_path, **slack_settings(slack.url))
    Store(settings.database_path).migrate()
    bot = Bot(settings, clock=clock, sender_options={"pace_s": 0.0})
    try:
        feed(bot, clock, history, 9)
        while bot.sender.run_once():
            pass
        for alert in (1, 2):  # a reply due in each thread
            assert bot.triage.perform(Request(verb="ack", alert_id=alert, actor="U1")).ok
        bot.sender.api = OpensAnAlertDuringTheFirstReply(
            bot, lambda: feed(bot, clock, history, 12))
        before = len(slack.calls)
        while bot.sender.run_once():
            pass
        posts = [c.params for c in slack.calls[before:] if c.method == "chat.postMessage"]
        kinds = ["reply" if p.get("thread_ts") else p["metadata"]["event_payload"]["alert_id"]
                 for p in posts]
        assert kinds[:2] == ["reply", 3], kinds  # the new parent right after the first reply
        assert kinds.count("reply") >= 2, "the other thread's reply still went out"
    finally:
        bot.store.close()
