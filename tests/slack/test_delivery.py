"""Slack delivery end to end: ingest -> outbox -> sender -> a fake Slack Web API.

The bot runs its real sender thread against the fake; assertions read what the fake
received, which is checked against Slack's published OpenAPI spec.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import Settings
from bot.domain.route import Route
from bot.ingest.hud import parse_hud_page
from bot.runtime import Bot
from bot.store.db import Store
from tests.fakes.slack_api import FakeSlack
from tests.support.clock import FakeClock
from tests.support.trunk import REPO, Trunk, sharded
from tests.support.waiting import wait_until

CHANNEL = "C0TEST"
HF = sharded("inductor", "inductor_huggingface", 2)
TIMM = sharded("inductor", "inductor_timm", 1)
# in_doubt_s: the fake stores a post before it drops the connection, so looking for it
# at once is safe here (the default waits as long as SLACK_TIMEOUT, 10 s)
FAST = {"pace_s": 0.0, "backoff_base_s": 0.05, "backoff_max_s": 0.2, "permanent_retry_s": 0.2,
        "idle_poll_s": 0.05, "in_doubt_s": 0.05}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def make_settings(tmp_path: Path, slack: FakeSlack, **route: object) -> Settings:
    return Settings(
        database_path=str(tmp_path / "bot.db"),
        slack_bot_token="xoxb-test",
        slack_signing_secret="test-secret",
        slack_api_url=slack.url + "/api/",
        slack_channel=CHANNEL,
        scheduler_enabled=False,
        routes=(Route(channel=CHANNEL, extend_interval=timedelta(minutes=30),
                      **route),),  # type: ignore[arg-type]
    )


class Harness:
    """A started bot plus the history it is fed, newest commit index tracked."""

    def __init__(self, tmp_path: Path, slack: FakeSlack, trunk: Trunk,
                 sender_options: dict[str, float] | None = None, **route: object) -> None:
        self.tmp_path = tmp_path
        self.slack = slack
        self.trunk = trunk
        self.clock = FakeClock(trunk.times[0])
        self.settings = make_settings(tmp_path, slack, **route)
        self.settings_with_channel = self.settings
        Store(self.settings.database_path).migrate()
        self.sender_options = sender_options or FAST
        self.bot = self._start()

    def _start(self) -> Bot:
        bot = Bot(self.settings, clock=self.clock, sender_options=self.sender_options)
        bot.start()
        return bot

    def restart(self) -> None:
        self.bot.stop()
        self.bot = self._start()

    def restart_with(self, settings: Settings) -> None:
        """Restart on the same database with changed settings (a configuration fix)."""
        self.settings = settings
        self.restart()

    def feed(self, newest: int, count: int | None = None) -> None:
        """Ingest HUD's view of commits up to ``newest`` (all of them by default)."""
        page = parse_hud_page(self.trunk.hud_page(newest, count), REPO, "main")
        self.clock.set(self.trunk.times[newest] + timedelta(minutes=90))
        self.bot.ingestor.commits(REPO, "main", list(reversed(page.commits)))
        self.bot.ingestor.results(page.results)

    def parents(self) -> list[dict]:
        return self.slack.messages(CHANNEL)

    def replies(self) -> list[dict]:
        parents = self.parents()
        return self.slack.replies(CHANNEL, parents[0]["ts"]) if parents else []

    def settled(self) -> bool:
        """Nothing left in the outbox (every version rendered, every event settled)."""
        db = self.bot.store.db
        pending = db.execute(
            "SELECT count(*) FROM alerts a LEFT JOIN slack_parents p ON p.alert_id = a.id "
            "WHERE p.ts IS NULL OR p.rendered_version < a.version").fetchone()[0]
        events = db.execute(
            "SELECT count(*) FROM alert_events e LEFT JOIN slack_replies r ON r.event_id = e.id "
            "WHERE r.event_id IS NULL OR r.state = 'pending'").fetchone()[0]
        return pending == 0 and events == 0

    def close(self) -> None:
        self.bot.stop()


def broken_trunk(n: int = 12, first_bad: int = 5, title: str | None = None) -> Trunk:
    trunk = Trunk.linear(n, HF + TIMM)
    if title is not None:
        trunk.titles[first_bad] = title
    for i in range(first_bad, n):
        trunk.set(i, HF[1], "failure", line="RuntimeError: CUDA error <!here> & friends")
    trunk.fill()
    return trunk


@pytest.fixture
def harness(tmp_path: Path, slack: FakeSlack) -> Iterator[Harness]:
    h = Harness(tmp_path, slack, broken_trunk())
    try:
        yield h
    finally:
        h.close()


def text_of(message: dict) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks", []))


def test_alert_posts_one_parent_with_metadata_and_blocks(harness: Harness,
                                                          slack: FakeSlack) -> None:
    harness.feed(7)  # commits 5, 6, 7 failing: streak 3
    wait_until(harness.settled, message="outbox drained")
    parents = harness.parents()
    assert len(parents) == 1
    parent = parents[0]
    assert parent["metadata"]["event_type"] == "inductor_alert"
    assert parent["metadata"]["event_payload"]["alert_id"] == 1
    body = text_of(parent)
    assert "broken-inductor" in body and "inductor_huggingface" in body
    assert "[P2]" in body
    assert harness.replies() == []  # "opened" is the parent itself, not a reply
    assert slack.violations == []


def test_extension_edits_parent_and_coalesces_thread_replies(harness: Harness,
                                                             slack: FakeSlack) -> None:
    harness.feed(7)
    wait_until(harness.settled, message="parent posted")
    harness.feed(8)
    harness.feed(9)
    wait_until(harness.settled, message="extension delivered")
    extended = [r["text"] for r in harness.replies() if "still failing" in r["text"].lower()]
    assert len(extended) == 1, harness.replies()  # two extensions, one reply per interval
    assert "(5 commits)" in extended[0]  # the coalesced reply shows the current streak
    updates = slack.calls_to("chat.update")
    assert updates, "the parent is edited in place"
    assert "5" in json.dumps(harness.bot.store.db.execute(
        "SELECT streak FROM alert_jobs").fetchall())
    assert len(harness.parents()) == 1
    assert slack.violations == []


def test_resolution_replies_and_edits_parent(harness: Harness, slack: FakeSlack) -> None:
    harness.feed(7)
    wait_until(harness.settled, message="parent posted")
    for i in range(8, 10):
        harness.trunk.runs.pop((i, HF[1]))
        harness.trunk.set(i, HF[1], "success")
    harness.feed(9)
    wait_until(harness.settled, message="resolution delivered")
    replies = [r["text"] for r in harness.replies()]
    assert any("resolved" in t.lower() for t in replies), replies
    parent = harness.parents()[0]
    assert "resolved" in text_of(slack.message(CHANNEL, parent["ts"]) or {}).lower()
    state = harness.bot.store.db.execute("SELECT state FROM alerts").fetchone()[0]
    assert state == "resolved"


def test_ci_text_is_escaped_and_never_pings(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(tmp_path, slack, broken_trunk(title="Revert <!channel> & <@U0BOSS> fix"))
    try:
        h.feed(7)
        wait_until(h.settled, message="parent posted")
        body = text_of(h.parents()[0])
        assert "<!channel>" not in body and "<@U0BOSS>" not in body and "<!here>" not in body
        assert "&lt;!channel&gt;" in body
    finally:
        h.close()


def test_crash_between_post_and_record_does_not_post_twice(harness: Harness,
                                                           slack: FakeSlack) -> None:
    # Slack stores the post, but the connection drops before the bot sees the ts
    slack.accept_then_drop("chat.postMessage")
    harness.feed(7)
    wait_until(harness.settled, timeout=15, message="recovered parent")
    assert len(harness.parents()) == 1
    assert slack.calls_to("conversations.history"), "looked the post up before reposting"
    assert slack.violations == []


def test_restart_after_post_started_finds_message_instead_of_reposting(
        harness: Harness, slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", drop=True)
    harness.feed(7)
    # the first attempt was dropped; stop the bot the moment a failure is recorded
    wait_until(lambda: slack.calls_to("chat.postMessage"), message="first post attempt")
    harness.restart()
    wait_until(harness.settled, timeout=15, message="delivered after restart")
    assert len(harness.parents()) == 1


def test_slack_outage_delivers_everything_in_order_afterwards(harness: Harness,
                                                              slack: FakeSlack) -> None:
    harness.feed(7)
    wait_until(harness.settled, message="parent posted")
    slack.set_outage(["chat.postMessage", "chat.update"], status=503)
    for i in range(8, 10):  # job recovers ... while Slack is down
        harness.trunk.runs.pop((i, HF[1]))
        harness.trunk.set(i, HF[1], "success")
    for i in range(5, 12):  # ... and another job breaks and joins
        harness.trunk.runs.pop((i, TIMM[0]), None)
        harness.trunk.set(i, TIMM[0], "failure")
    harness.feed(7)  # timm failing at 5..7 joins the open alert
    harness.feed(9)
    wait_until(lambda: harness.bot.store.db.execute(
        "SELECT count(*) FROM slack_failures").fetchone()[0] > 0, message="failures recorded")
    assert not harness.settled()
    slack.clear_outage()
    wait_until(harness.settled, timeout=20, message="backlog delivered")
    texts = [r["text"].lower() for r in harness.replies()]
    kinds = [row[0] for row in harness.bot.store.db.execute(
        "SELECT e.kind FROM alert_events e JOIN slack_replies r ON r.event_id = e.id "
        "WHERE r.state = 'sent' ORDER BY r.ts")]
    ids = [row[0] for row in harness.bot.store.db.execute(
        "SELECT e.id FROM alert_events e JOIN slack_replies r ON r.event_id = e.id "
        "WHERE r.state = 'sent' ORDER BY r.ts")]
    assert ids == sorted(ids), "thread replies arrive in timeline order"
    assert len(texts) == len(kinds) == len(set(zip(ids, texts, strict=True)))
    assert len(harness.parents()) == 1
    assert slack.violations == []


def test_rate_limit_is_honoured(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(tmp_path, slack, broken_trunk(),
                sender_options={**FAST, "pace_s": 0.0})
    try:
        slack.fail_next("chat.postMessage", status=429, retry_after=1)
        h.feed(7)
        wait_until(h.settled, timeout=10, message="posted after the rate limit")
        posts = slack.calls_to("chat.postMessage")
        assert len(posts) == 2
        assert posts[1].at - posts[0].at >= 0.95, "waited for Retry-After"
        assert len(h.parents()) == 1
    finally:
        h.close()


def test_pacing_spaces_messages_per_channel(tmp_path: Path, slack: FakeSlack) -> None:
    h = Harness(tmp_path, slack, broken_trunk(), sender_options={**FAST, "pace_s": 0.3})
    try:
        h.feed(7)
        wait_until(h.settled, message="parent posted")
        for i in range(8, 10):
            h.trunk.runs.pop((i, HF[1]))
            h.trunk.set(i, HF[1], "success")
        h.feed(9)
        wait_until(h.settled, message="resolution delivered")
        times = [c.at for c in slack.calls if c.method in ("chat.postMessage", "chat.update")]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert len(times) >= 3 and min(gaps) >= 0.28, gaps
    finally:
        h.close()


def test_permanent_error_is_visible_in_health_and_retried_once_fixed(
        harness: Harness, slack: FakeSlack) -> None:
    slack.set_outage(["chat.postMessage"], error="not_in_channel")
    harness.feed(7)
    wait_until(lambda: harness.bot.health_report()["problems"].get("slack"),
               message="permanent failure reported")
    report = harness.bot.health_report()
    assert report["ok"] is False
    assert "not_in_channel" in report["problems"]["slack"]
    assert harness.parents() == []
    slack.clear_outage()  # someone invited the bot
    wait_until(harness.settled, timeout=10, message="delivered once fixed")
    assert len(harness.parents()) == 1
    wait_until(lambda: not harness.bot.health_report()["problems"], message="healthy again")


def test_a_delivery_that_failed_for_good_is_retried_at_start_after_a_fix(
        tmp_path: Path, slack: FakeSlack) -> None:
    """No channel anywhere: the parent waits for a human; the fix and a restart post it at once."""
    h = Harness(tmp_path, slack, broken_trunk(), sender_options={**FAST, "permanent_retry_s": 600})
    h.restart_with(replace(h.settings, slack_channel=None, routes=(Route(channel=None),)))
    try:
        h.feed(7)
        wait_until(lambda: h.bot.health_report()["problems"].get("slack"),
                   message="the missing channel reported")
        assert "no channel configured" in h.bot.health_report()["problems"]["slack"]
        assert slack.calls_to("chat.postMessage") == []
        h.restart_with(h.settings_with_channel)  # SLACK_CHANNEL set, then a restart
        # the failure said "retry in 600 s"; the restart tries again now
        wait_until(h.settled, timeout=20, message="posted right after the restart")
        assert len(h.parents()) == 1
    finally:
        h.close()


def test_rejected_blocks_fall_back_to_plain_text(harness: Harness, slack: FakeSlack) -> None:
    slack.fail_next("chat.postMessage", error="invalid_blocks")
    harness.feed(7)
    wait_until(harness.settled, message="posted as text")
    parent = harness.parents()[0]
    assert "broken-inductor" in parent["text"]


def test_console_mode_prints_instead_of_posting(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    trunk = broken_trunk()
    settings = replace(Settings(), database_path=str(tmp_path / "c.db"), scheduler_enabled=False,
                       routes=(Route(),))
    Store(settings.database_path).migrate()
    clock = FakeClock(trunk.times[7] + timedelta(minutes=90))
    bot = Bot(settings, clock=clock, sender_options=FAST)
    bot.start()
    try:
        page = parse_hud_page(trunk.hud_page(7), REPO, "main")
        bot.ingestor.commits(REPO, "main", list(reversed(page.commits)))
        bot.ingestor.results(page.results)
        wait_until(lambda: bot.health_report()["outbox"]["parents_pending"] == 0,
                   message="console post")
        printed = capsys.readouterr().out
        assert printed.startswith("── #console · new message ")
        assert "[P2] broken-inductor" in printed and "`RuntimeError: CUDA error" in printed
        assert bot.health_report()["slack"] == "console"
        row = bot.store.db.execute("SELECT channel, console FROM slack_parents").fetchone()
        assert row == ("console", 1), "recorded as shown only in console mode"
    finally:
        bot.stop()
