"""Requests signed the way GitHub and Slack sign them, for tests and benches that speak HTTP."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any
from urllib.parse import urlencode

from bot.web.signatures import sign_github


def github_request(event: str, payload: Any, delivery_id: str,
                   secret: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers of one GitHub webhook delivery."""
    body = json.dumps(payload).encode()
    return body, {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery_id,
                  "Content-Type": "application/json",
                  "X-Hub-Signature-256": sign_github(secret, body)}


_TRIGGERS = itertools.count(1)


def trigger_id() -> str:
    """A fresh ``trigger_id``, shaped like Slack's: Slack never gives two actions one id."""
    return f"{int(time.time())}.{next(_TRIGGERS)}.{time.time_ns() % 10**9:09d}"


def action_ts() -> str:
    return f"{time.time():.6f}"


def slack_headers(secret: str, body: bytes, timestamp: int | None = None,
                  content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    """``X-Slack-Signature`` over ``v0:{timestamp}:{body}``, as Slack computes it."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    base = b"v0:" + ts.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"Content-Type": content_type, "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": f"v0={digest}"}


def slash_command_body(text: str, response_url: str, user: str = "U1",
                       channel: str = "C0TEST", command: str = "/inductor") -> bytes:
    form = {"token": "legacy", "team_id": "TFAKE", "channel_id": channel, "channel_name": "ci",
            "user_id": user, "user_name": user.lower(), "command": command, "text": text,
            "api_app_id": "A0BOT", "response_url": response_url, "trigger_id": trigger_id()}
    return urlencode(form).encode()


def block_action_body(action_id: str, value: str, response_url: str, user: str = "U1",
                      channel: str = "C0TEST", message_ts: str = "1.000001") -> bytes:
    """A click on a button in a channel message (the alert's parent)."""
    payload = {
        "type": "block_actions", "team": {"id": "TFAKE"}, "api_app_id": "A0BOT",
        "user": {"id": user, "username": user.lower(), "team_id": "TFAKE"},
        "token": "legacy", "trigger_id": trigger_id(),
        "actions": [{"type": "button", "action_id": action_id, "value": value,
                     "block_id": f"alert:{value}:actions", "action_ts": action_ts()}],
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "channel": {"id": channel, "name": "ci"}, "message": {"ts": message_ts, "blocks": []},
        "response_url": response_url,
    }
    return urlencode({"payload": json.dumps(payload)}).encode()
