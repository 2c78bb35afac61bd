"""Slash commands keep Slack's 3-second deadline while webhooks pour in.

A generous bound, not a measurement (``bench/load.py`` measures): eight threads send
signed webhook deliveries back to back while ``/inductor list`` and ``show`` arrive;
every command is acknowledged, and answered, within 3 s, and no delivery is refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import CHANNEL, slack_settings
from tests.support.server import GITHUB_SECRET, RunningBot, running_bot
from tests.support.signing import github_request, slack_headers, slash_command_body
from tests.support.trunk import Trunk, sharded

DEADLINE_S = 3.0
JOBS = sharded("inductor", "inductor_huggingface", 5) + sharded("inductor", "inductor_timm", 6)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[RunningBot, FakeSlack]]:
    with FakeSlack() as slack, running_bot(tmp_path, **slack_settings(slack.url)) as bot:
        yield bot, slack


def deliveries() -> list[tuple[bytes, dict[str, str]]]:
    trunk = Trunk.linear(40, JOBS, salt="load")
    for i in range(40):
        for name in JOBS:
            trunk.set(i, name, "failure" if name == JOBS[2] and i >= 20 else "success")
    return [github_request(d["event"], d["payload"], f"d{n}", GITHUB_SECRET)
            for n, d in enumerate(trunk.deliveries())]


def test_commands_are_answered_within_three_seconds_under_webhook_load(
        running: tuple[RunningBot, FakeSlack]) -> None:
    bot, slack = running
    requests = deliveries()
    statuses: list[int] = []

    def send(chunk: list[tuple[bytes, dict[str, str]]]) -> None:
        with bot.client() as http:
            for body, headers in chunk:
                statuses.append(http.post("/github/webhook", content=body,
                                          headers=headers).status_code)

    timings: list[tuple[str, float, float]] = []
    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=bot.base_url, timeout=10) as http:
        loaders = [pool.submit(send, requests[i::8]) for i in range(8)]
        for n, text in enumerate(["list", "show A1", "list all", "help", "list", "show A1"]):
            key = f"cmd{n}"
            body = slash_command_body(text, slack.response_url(key), channel=CHANNEL)
            sent = time.monotonic()
            answer = http.post("/slack/events", content=body,
                               headers=slack_headers("test-signing-secret", body))
            acked = time.monotonic() - sent
            assert answer.status_code == 200, answer.text
            if not answer.content:  # answered later, through response_url
                slack.wait_for(lambda k=key: slack.responses(k), timeout=DEADLINE_S * 2)
            timings.append((text, acked, time.monotonic() - sent))
        for loader in loaders:
            loader.result()
    assert len(statuses) == len(requests) and set(statuses) == {200}
    slow = [t for t in timings if t[1] > DEADLINE_S or t[2] > DEADLINE_S]
    assert slow == [], f"over {DEADLINE_S} s (text, ack s, answer s): {slow}"
