"""Acting as Slack towards the running bot: signed slash commands, clicks and events.

``start`` runs a bot whose alert's parent is posted in a fake Slack; ``SlackSide``
sends what Slack would send (signed as Slack signs it) and reads back what Slack holds.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import CHANNEL, FAST_SENDER, feed, slack_settings
from tests.support.server import Clock, RunningBot, running_bot
from tests.support.signing import action_ts, trigger_id
from tests.support.trunk import Trunk

SECRET = "test-signing-secret"
RESOLVERS = ("U1", "S0FIXERS")  # U1 by name, U2 through the user group
USERS = [{"id": f"U{i}", "name": name} for i, name in
         enumerate(["alice", "bob", "carol", "dan", "erin", "frank", "grace"], start=1)]


def text_of(message: dict[str, Any] | None) -> str:
    message = message or {}
    return message.get("text", "") + json.dumps(message.get("blocks", []))


def showing(read: Callable[[], dict[str, Any] | None],
            *needles: str) -> Callable[[], dict[str, Any] | None]:
    """A ``wait_for`` predicate: the message ``read`` returns, once it shows every needle."""
    def check() -> dict[str, Any] | None:
        message = read()
        return message if message and all(n in text_of(message) for n in needles) else None
    return check


@dataclass
class Reply:
    """Slack's view of one interactive request: the HTTP answer and the response_url posts."""

    http: httpx.Response
    key: str
    fake: FakeSlack

    def text(self, timeout: float = 10.0) -> str:
        """The ephemeral answer: in the acknowledgement itself, or posted to response_url."""
        assert self.http.status_code == 200, self.http.text
        if self.http.content:
            body = self.http.json()
            if body.get("text"):
                assert body.get("response_type") == "ephemeral"
                return str(body["text"])
        [answer] = self.fake.wait_for(lambda: self.fake.responses(self.key), timeout)
        assert answer["response_type"] == "ephemeral"
        return str(answer.get("text", ""))


class SlackSide:
    """What Slack sends to the bot, signed as Slack signs it, and what Slack then holds."""

    def __init__(self, running: RunningBot, fake: FakeSlack, trunk: Trunk) -> None:
        self.running = running
        self.bot = running.bot
        self.fake = fake
        self.trunk = trunk
        self._keys = itertools.count(1)
        self.http = running.client()

    def post(self, body: str, content_type: str = "application/x-www-form-urlencoded",
             timestamp: int | None = None, secret: str = SECRET,
             headers: dict[str, str] | None = None) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
        return self.http.post("/slack/events", content=body.encode(), headers={
            "Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest.hexdigest()}", **(headers or {})})

    def command(self, text: str, user: str = "U1", channel: str = CHANNEL,
                name: str = "/inductor") -> Reply:
        key = f"cmd{next(self._keys)}"
        form = {"token": "legacy", "team_id": "TFAKE", "channel_id": channel,
                "channel_name": "ci", "user_id": user, "user_name": user.lower(),
                "command": name, "text": text, "api_app_id": "A0BOT",
                "response_url": self.fake.response_url(key), "trigger_id": trigger_id()}
        return Reply(self.post(urlencode(form)), key, self.fake)

    def click(self, action_id: str, user: str = "U1", *, choose: str | None = None,
              source: dict[str, Any] | None = None, in_home: bool = False) -> Reply:
        """Click ``action_id`` as rendered in the parent message (or ``source``'s blocks).

        ``choose``: the user for the user picker, the option code ("2h") for snooze.
        """
        source = source if source is not None else self.parent()
        action = self._action(source, action_id, choose)
        key = f"act{next(self._keys)}"
        payload: dict[str, Any] = {
            "type": "block_actions", "team": {"id": "TFAKE"}, "api_app_id": "A0BOT",
            "user": {"id": user, "username": user.lower(), "team_id": "TFAKE"},
            "token": "legacy", "trigger_id": trigger_id(), "actions": [action]}
        if in_home:
            payload["container"] = {"type": "view", "view_id": source.get("id", "V1")}
            payload["view"] = source
        else:
            payload.update(
                container={"type": "message", "message_ts": source["ts"],
                           "channel_id": CHANNEL, "is_ephemeral": False},
                channel={"id": CHANNEL, "name": "ci"}, message=source,
                response_url=self.fake.response_url(key))
        return Reply(self.post(urlencode({"payload": json.dumps(payload)})), key, self.fake)

    @staticmethod
    def _action(source: dict[str, Any], action_id: str, choose: str | None) -> dict[str, Any]:
        for block in source.get("blocks", []):
            for element in block.get("elements", []):
                if element.get("action_id") != action_id:
                    continue
                action = {"type": element["type"], "action_id": action_id,
                          "block_id": block["block_id"], "action_ts": action_ts()}
                if element["type"] == "button":
                    action["value"] = element["value"]
                elif element["type"] == "users_select":
                    action["selected_user"] = choose
                else:
                    [option] = [o for o in element["options"]
                                if o["value"].endswith(f"|{choose}")]
                    action["selected_option"] = option
                return action
        raise AssertionError(f"no {action_id} element in {json.dumps(source)[:500]}")

    def event(self, event: dict[str, Any], event_id: str,
              retry: int | None = None) -> httpx.Response:
        body = {"token": "legacy", "team_id": "TFAKE", "api_app_id": "A0BOT",
                "type": "event_callback", "event_id": event_id, "event_time": 1,
                "event": event}
        headers = {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"} \
            if retry is not None else {}
        return self.post(json.dumps(body), "application/json", headers=headers)

    # --- what the bot and Slack hold ---------------------------------------------------

    def row(self, alert_id: int = 1) -> dict[str, Any]:
        return next(self.bot.store.db.query("SELECT * FROM alerts WHERE id = ?", [alert_id]))

    def kinds(self, alert_id: int = 1) -> list[str]:
        return [r[0] for r in self.bot.store.db.execute(
            "SELECT kind FROM alert_events WHERE alert_id = ? ORDER BY id", [alert_id])]

    def parent(self) -> dict[str, Any]:
        return self.fake.messages(CHANNEL)[0]

    def wait_parent(self, *needles: str) -> dict[str, Any]:
        """Wait until the parent message shows every needle (after chat.update)."""
        return self.fake.wait_for(showing(self.parent, *needles))

    def thread(self) -> list[str]:
        return [m["text"] for m in self.fake.replies(CHANNEL, self.parent()["ts"])]

    def wait_reply(self, needle: str) -> str:
        return self.fake.wait_for(lambda: next((t for t in self.thread() if needle in t), None))


@contextmanager
def fake_workspace() -> Iterator[FakeSlack]:
    """A fake Slack with the people and the resolvers' user group the tests use."""
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"]}) as server:
        yield server


@contextmanager
def start(tmp_path: Path, fake: FakeSlack, trunk: Trunk, newest: int,
          route: dict[str, Any] | None = None, **settings: Any) -> Iterator[SlackSide]:
    """A running bot whose alert's parent is posted; ``route``/``settings`` add to the defaults."""
    clock = Clock(trunk.times[newest])
    with running_bot(tmp_path, clock, sender_options=FAST_SENDER, **settings,
                     **slack_settings(fake.url, SECRET, resolvers=RESOLVERS,
                                      **(route or {}))) as running:
        feed(running.bot, trunk, newest, clock)
        fake.wait_for(lambda: fake.messages(CHANNEL))
        side = SlackSide(running, fake, trunk)
        try:
            yield side
        finally:
            side.http.close()
            assert fake.violations == []


