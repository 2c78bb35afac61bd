"""Reminders, escalation, snooze expiry, wake-ups and the digest, driven by an injected clock.

``Bot.run_nudges`` is what the scheduler job calls each minute; here the test calls it at
chosen moments, so nothing sleeps. Thread replies are read back from a fake Slack.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.domain.triage import SnoozeSpec
from bot.runtime import Bot
from bot.slack.triage import Request
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import (
    CHANNEL,
    FAST_SENDER,
    TIMM,
    break_timm,
    broken_trunk,
    feed,
    slack_settings,
)
from tests.support.server import Clock, settings_for, started_bot
from tests.support.trunk import Trunk
from tests.support.waiting import wait_until

POLICY: dict[str, Any] = {
    "oncall": ("S0ONCALL",), "escalate_to": ("U0LEAD",), "remind_after": timedelta(minutes=30),
    "remind_every": timedelta(minutes=30), "remind_limit": 2,
    "escalate_after": timedelta(hours=2),
}


class Reminding:
    """A started bot (no HTTP needed) with an open alert, its clock and the fake Slack."""

    def __init__(self, tmp_path: Path, fake: FakeSlack, trunk: Trunk, newest: int = 7,
                 **overrides: Any) -> None:
        self.fake = fake
        self.trunk = trunk
        self.clock = Clock(trunk.times[newest])
        self.settings = settings_for(tmp_path, **slack_settings(fake.url, **POLICY), **overrides)
        self.bots: list[Bot] = []
        self.bot = self.start_bot()
        feed(self.bot, trunk, newest, self.clock)
        self.opened: datetime = self.clock.now
        fake.wait_for(lambda: fake.messages(CHANNEL))

    def start_bot(self) -> Bot:
        bot = started_bot(self.settings, self.clock, FAST_SENDER)
        self.bots.append(bot)
        return bot

    def restart(self) -> None:
        """Stop the bot and start a new process's worth of bot on the same database."""
        self.bot.stop()
        self.bots.remove(self.bot)
        self.bot = self.start_bot()

    def at(self, minutes: float) -> dict[int, str]:
        """Tick the nudges job at ``minutes`` after the alert opened."""
        self.clock.now = self.opened + timedelta(minutes=minutes)
        return self.bot.run_nudges()

    def act(self, minutes: float, **request: Any) -> str:
        self.clock.now = self.opened + timedelta(minutes=minutes)
        answer = self.bot.triage.perform(Request(alert_id=1, actor="U1", **request))
        assert answer.ok, answer.text
        return answer.text

    def row(self) -> dict[str, Any]:
        return next(self.bot.store.db.query("SELECT * FROM alerts WHERE id = 1"))

    def events(self, kind: str) -> list[dict[str, Any]]:
        return list(self.bot.store.db.query(
            "SELECT kind, actor, at, data FROM alert_events WHERE alert_id = 1 AND kind = ? "
            "ORDER BY id", [kind]))

    def thread(self) -> list[str]:
        parent = self.fake.messages(CHANNEL)[0]
        return [m["text"] for m in self.fake.replies(CHANNEL, parent["ts"])]

    def wait_replies(self, needle: str, count: int = 1, timeout: float = 5.0) -> list[str]:
        return self.fake.wait_for(
            lambda: (found if len(found := [t for t in self.thread() if needle in t]) >= count
                     else None), timeout)

    def wait_parent(self, needle: str) -> str:
        def shown() -> str | None:
            parent = self.fake.messages(CHANNEL)[0]
            text = parent["text"] + str(parent.get("blocks"))
            return text if needle in text else None
        return self.fake.wait_for(shown)

    def close(self) -> None:
        for bot in self.bots:
            bot.stop()


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(users=[{"id": "U1", "name": "alice"}]) as server:
        yield server


@pytest.fixture
def reminding(tmp_path: Path, fake: FakeSlack) -> Iterator[Reminding]:
    harness = Reminding(tmp_path, fake, broken_trunk())
    try:
        yield harness
    finally:
        harness.close()


def test_reminders_repeat_up_to_the_limit_then_escalation_raises_the_priority(
        reminding: Reminding) -> None:
    assert reminding.at(29) == {}
    assert reminding.at(30) == {1: "reminder"}
    assert reminding.at(30) == {}  # the same tick again sends nothing
    assert reminding.at(59) == {}
    assert reminding.at(60) == {1: "reminder"}
    assert reminding.at(90) == {}  # remind_limit is 2
    assert reminding.at(119) == {}
    assert reminding.at(120) == {1: "escalated"}
    assert all(reminding.at(m) == {} for m in range(121, 600, 30))

    replies = reminding.wait_replies(":bell: Reminder", 2)
    assert replies[0].startswith("<!subteam^S0ONCALL> :bell: Reminder: this alert is still "
                                 "open and unowned after 30m.")
    assert "after 1h." in replies[1]
    [escalation] = reminding.wait_replies(":arrow_up: Escalated")
    assert escalation.startswith("<@U0LEAD> :arrow_up: Escalated to P1")
    parent = reminding.wait_parent("[P1↑]")
    assert "escalated from P2" in parent
    assert reminding.row()["priority"] == "P2" and reminding.row()["escalated"] == 1
    assert [e["data"] for e in reminding.events("reminder")] == [
        '{"age_s": 1800, "mentions": ["S0ONCALL"], "n": 1}',
        '{"age_s": 3600, "mentions": ["S0ONCALL"], "n": 2}']


def test_acknowledging_stops_them_and_withdrawing_restarts_them(reminding: Reminding) -> None:
    assert reminding.at(30) == {1: "reminder"}
    reminding.act(31, verb="ack")
    assert all(reminding.at(m) == {} for m in range(40, 300, 10))
    reminding.act(300, verb="unack")
    assert reminding.at(329) == {}
    assert reminding.at(330) == {1: "reminder"}
    assert [e["data"].count('"n": 1') for e in reminding.events("reminder")] == [1, 1]


@pytest.mark.parametrize("request_", [{"verb": "assign", "assignee": "U1"},
                                      {"verb": "snooze", "snooze": SnoozeSpec("green")},
                                      {"verb": "resolve"}])
def test_assigning_snoozing_or_resolving_stop_them(reminding: Reminding,
                                                   request_: dict[str, Any]) -> None:
    reminding.act(10, **request_)
    assert all(reminding.at(m) == {} for m in range(20, 600, 10))
    assert reminding.events("reminder") == [] and reminding.events("escalated") == []


def test_a_restarted_bot_never_sends_twice(reminding: Reminding) -> None:
    assert reminding.at(30) == {1: "reminder"}
    reminding.wait_replies(":bell: Reminder")
    reminding.restart()
    assert reminding.at(30) == {}
    assert reminding.at(45) == {}
    assert reminding.at(60) == {1: "reminder"}
    reminding.wait_replies(":bell: Reminder", 2)
    with pytest.raises(TimeoutError):
        reminding.wait_replies(":bell: Reminder", 3, timeout=0.5)  # nothing more may come
    assert len(reminding.events("reminder")) == 2


def test_two_processes_on_one_database_nudge_once(reminding: Reminding) -> None:
    other = reminding.start_bot()
    assert reminding.bot.scheduler.holds_lease() and not other.scheduler.holds_lease()
    reminding.clock.now = reminding.opened + timedelta(minutes=30)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(Bot.run_nudges, [reminding.bot, other]))
    assert sorted(len(r) for r in results) == [0, 1]
    assert len(reminding.events("reminder")) == 1


def test_a_snooze_expires_on_time_and_the_alert_returns(reminding: Reminding) -> None:
    reminding.act(5, verb="snooze", snooze=SnoozeSpec("duration", timedelta(hours=1)))
    reminding.wait_parent(":zzz: *Snoozed*")
    assert reminding.at(30) == {} and reminding.at(64) == {}
    assert reminding.at(65) == {1: "snooze_expired"}
    reminding.wait_replies(":alarm_clock: Snooze expired; the alert is active again.")
    reminding.wait_parent(":red_circle: *Open*")
    row = reminding.row()
    assert row["snooze_kind"] is None and row["snoozed_until"] is None
    assert reminding.at(94) == {}
    assert reminding.at(95) == {1: "reminder"}  # the reminder clock restarted at expiry


def test_a_snooze_until_a_commit_ends_when_that_commit_has_results(tmp_path: Path,
                                                                   fake: FakeSlack) -> None:
    harness = Reminding(tmp_path, fake, broken_trunk(), newest=7)
    try:
        awaited = harness.trunk.shas[9]
        harness.act(5, verb="snooze", snooze=SnoozeSpec("sha", sha=awaited[:9]))
        assert harness.row()["snooze_sha"] == awaited[:9]  # not landed yet: kept as given
        feed(harness.bot, harness.trunk, 8, harness.clock)
        assert harness.bot.run_nudges() == {}
        feed(harness.bot, harness.trunk, 9, harness.clock)
        assert harness.bot.run_nudges() == {1: "snooze_expired"}
        harness.wait_replies("Snooze expired")
    finally:
        harness.close()


def test_a_new_failing_job_wakes_a_snoozed_alert(tmp_path: Path, fake: FakeSlack) -> None:
    trunk = broken_trunk(timm_known_until=4)
    harness = Reminding(tmp_path, fake, trunk, newest=7)
    try:
        harness.act(5, verb="snooze", snooze=SnoozeSpec("green"))
        break_timm(trunk, 5, 7)
        feed(harness.bot, trunk, 7, harness.clock)
        [woke] = harness.events("woke")
        assert TIMM[0].split(" (")[0] in woke["data"] and woke["actor"] is None
        assert harness.row()["snooze_kind"] is None
        [reply] = harness.wait_replies(":alarm_clock: Snooze ended early")
        assert "inductor_timm)* started failing" in reply
    finally:
        harness.close()


def test_console_mode_still_records_reminders(tmp_path: Path) -> None:
    trunk = broken_trunk()
    clock = Clock(trunk.times[7])
    route_settings = slack_settings("http://unused", **POLICY)
    bot = started_bot(settings_for(tmp_path, routes=route_settings["routes"]), clock,
                      FAST_SENDER)
    try:
        assert bot.console and bot.bolt is None
        feed(bot, trunk, 7, clock)
        wait_until(lambda: bot.slack_api.posted, message="the console parent")  # type: ignore[attr-defined]
        clock.now += timedelta(minutes=30)
        assert bot.run_nudges() == {1: "reminder"}
        wait_until(lambda: any("🔔 Reminder" in m for m in bot.slack_api.transcript),  # type: ignore[attr-defined]
                   message="the console reminder")
    finally:
        bot.stop()


def test_daily_digest_once_per_channel_and_day(tmp_path: Path, fake: FakeSlack) -> None:
    harness = Reminding(tmp_path, fake, broken_trunk(), digest_hour_utc=16)
    try:
        opened = harness.opened  # 15:50 UTC
        assert opened.hour == 15
        harness.act(5, verb="ack")
        assert harness.bot.post_digest(opened.replace(minute=59)) == []  # before the hour
        at = opened.replace(hour=16, minute=5)
        assert harness.bot.post_digest(at) == [CHANNEL]
        assert harness.bot.post_digest(at + timedelta(hours=2)) == []
        harness.restart()
        assert harness.bot.post_digest(at + timedelta(hours=3)) == []
        digests = [m["text"] for m in fake.messages(CHANNEL) if "digest" in m["text"]]
        assert len(digests) == 1
        assert "Opened: *1* · resolved: *0* · still open: *1*" in digests[0]
        assert "Median time to acknowledge: *5m* · to resolve: *n/a*" in digests[0]
        assert "`A1` inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface) " \
               "(3 commits)" in digests[0]
        assert harness.bot.post_digest(at + timedelta(days=1)) == [CHANNEL]
    finally:
        harness.close()


def test_digest_is_off_without_the_setting(reminding: Reminding) -> None:
    assert reminding.bot.settings.digest_hour_utc is None
    assert reminding.bot.post_digest(reminding.opened + timedelta(hours=12)) == []
    assert "digest" not in reminding.bot.scheduler.jobs and "nudges" in reminding.bot.scheduler.jobs


def test_settings_reject_an_impossible_digest_hour() -> None:
    from bot.config import ConfigError, load_settings

    assert load_settings({"DIGEST_HOUR_UTC": "7"}).digest_hour_utc == 7
    with pytest.raises(ConfigError, match="DIGEST_HOUR_UTC: expected an hour from 0 to 23"):
        load_settings({"DIGEST_HOUR_UTC": "24"})
    assert load_settings({}).digest_hour_utc is None
