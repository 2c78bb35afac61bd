"""A real ``python -m bot serve`` with a fake Slack, fed a broken trunk over signed HTTP.

The system tests of faults and hostile input use it: everything goes through the
process's sockets exactly as GitHub and Slack would send it, and what the bot did is
read back from the fake Slack and the SQLite file.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.slack_api import FakeSlack
from tests.support.serve_process import ServeProcess
from tests.support.signing import (
    action_ts,
    github_request,
    slack_headers,
    slash_command_body,
    trigger_id,
)
from tests.support.trunk import Trunk, sharded
from tests.support.waiting import wait_until

GITHUB_SECRET = "system-github-secret-7f3a1c"
SIGNING_SECRET = "system-signing-secret-0b9e44"
BOT_TOKEN = "xoxb-system-token-5d2e80a1"
CHANNEL = "C0SYSTEM"
HF = sharded("inductor", "inductor_huggingface", 2)


def broken(n: int = 8, first_bad: int = 4, salt: str = "") -> Trunk:
    """One shard fails from ``first_bad`` on, recent enough to alert now."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    trunk = Trunk.linear(n, HF, salt=salt, start=start)
    for i in range(n):
        trunk.set(i, HF[0], "success")
        trunk.set(i, HF[1], "failure" if i >= first_bad else "success",
                  line="RuntimeError: CUDA error")
    return trunk


class BotProcess:
    """One ``serve`` process (restartable), its fake Slack and an HTTP client for it."""

    def __init__(self, tmp: Path, slack: FakeSlack, env: dict[str, str] | None = None,
                 config: str | None = None, db_path: Path | None = None,
                 name: str = "serve") -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.db_path = db_path or tmp / "bot.db"
        self.slack = slack
        base = {"DATABASE_PATH": str(self.db_path), "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": slack.url + "/api/",
                "SLACK_CHANNEL": CHANNEL, "GITHUB_WEBHOOK_SECRET": GITHUB_SECRET,
                "SCHEDULER_ENABLED": "false", "SLACK_TIMEOUT": "2"}
        if config is not None:
            path = tmp / f"{name}.toml"
            path.write_text(config)
            base["BOT_CONFIG"] = str(path)
        self.process = ServeProcess({**base, **(env or {})}, tmp / f"{name}.log")
        self.http: httpx.Client | None = None
        self._deliveries = 0

    def start(self, migrate: bool = True) -> BotProcess:
        if migrate:
            self.process.migrate()
        self.process.start()
        self.http = httpx.Client(base_url=self.process.url, timeout=30)
        return self

    def stop(self) -> None:
        if self.http is not None:
            self.http.close()
        self.process.stop()

    @property
    def client(self) -> httpx.Client:
        assert self.http is not None, "not started"
        return self.http

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.db_path, timeout=30)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with closing(self.db()) as con:
            return con.execute(sql, args).fetchall()

    # --- GitHub ---------------------------------------------------------------------------

    def deliver(self, delivery: dict[str, Any], delivery_id: str | None = None
                ) -> httpx.Response:
        self._deliveries += 1
        body, headers = github_request(delivery["event"], delivery["payload"],
                                       delivery_id or f"d-{self._deliveries}", GITHUB_SECRET)
        return self.client.post("/github/webhook", content=body, headers=headers)

    def feed(self, trunk: Trunk) -> None:
        for delivery in trunk.deliveries():
            answer = self.deliver(delivery)
            assert answer.status_code == 200, answer.text

    def wait_for_parent(self, alerts: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
        return wait_until(lambda: len(self.slack.messages(CHANNEL)) >= alerts
                          and self.slack.messages(CHANNEL), timeout=timeout,
                          message=f"{alerts} parent message(s)\n{self.process.log_tail()}")

    # --- Slack ----------------------------------------------------------------------------

    def slack_post(self, body: bytes, content_type: str = "application/x-www-form-urlencoded",
                   timeout: float | None = None) -> httpx.Response:
        return self.client.post("/slack/events", content=body,
                                headers=slack_headers(SIGNING_SECRET, body,
                                                      content_type=content_type),
                                timeout=timeout or 30)

    def command(self, text: str, key: str, user: str = "U1") -> tuple[bytes, httpx.Response]:
        body = slash_command_body(text, self.slack.response_url(key), user=user,
                                  channel=CHANNEL)
        return body, self.slack_post(body)

    def click(self, action_id: str, value: str, key: str, user: str = "U1"
              ) -> tuple[bytes, httpx.Response]:
        payload = {
            "type": "block_actions", "team": {"id": "TFAKE"}, "api_app_id": "A0BOT",
            "user": {"id": user, "username": user.lower(), "team_id": "TFAKE"},
            "token": "legacy", "trigger_id": trigger_id(),
            "actions": [{"type": "button", "action_id": action_id, "value": value,
                         "block_id": f"alert:{value}:actions", "action_ts": action_ts()}],
            "container": {"type": "message", "message_ts": "1.000001", "channel_id": CHANNEL,
                          "is_ephemeral": False},
            "channel": {"id": CHANNEL, "name": "ci"}, "message": {"ts": "1.000001",
                                                                 "blocks": []},
            "response_url": self.slack.response_url(key),
        }
        body = urlencode({"payload": json.dumps(payload)}).encode()
        return body, self.slack_post(body)

    def health(self) -> tuple[int, dict[str, Any]]:
        answer = self.client.get("/healthz")
        return answer.status_code, answer.json()


@contextmanager
def bot_process(tmp: Path, slack: FakeSlack | None = None, **kwargs: Any
                ) -> Iterator[BotProcess]:
    """A started bot process (and its fake Slack, unless given one); stopped after."""
    own = slack is None
    fake = slack or FakeSlack().start()
    bot = BotProcess(tmp, fake, **kwargs).start()
    try:
        yield bot
    finally:
        bot.stop()
        if own:
            fake.stop()
