"""Console mode is a whole trial without a Slack workspace, and it never reaches Slack.

No ``SLACK_BOT_TOKEN``: a signed GitHub incident comes in over HTTP, the console shows
the alert as a person reads it in Slack, and signed slash commands, clicks and events
to ``/slack/events`` are answered on the console. ``SLACK_API_URL`` and every
``response_url`` point at a fake Slack that must receive nothing at all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from bot.domain.route import Route
from bot.runtime import Bot
from bot.slack.console import ConsoleApi
from bot.store.db import Store
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import FAST_SENDER
from tests.support.server import Clock, RunningBot, running_bot
from tests.support.signing import action_ts, github_request, slack_headers, trigger_id
from tests.support.trunk import Trunk, sharded
from tests.support.waiting import wait_until

SECRET = "console-signing-secret"
GITHUB_SECRET = "github-webhook-secret"  # what running_bot configures
HF = sharded("inductor", "inductor_huggingface", 2)
TIMM = sharded("inductor", "inductor_timm", 1)
HF_KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"


def incident() -> Trunk:
    """Commit 4 breaks huggingface shard 2 (three red commits since); timm stays green."""
    trunk = Trunk.linear(7, HF + TIMM, salt="console")
    trunk.titles[4] = "[inductor] Fuse pointwise ops into templates (#150123)"
    trunk.authors[4] = "alice-dev"
    for i in range(4, 7):
        trunk.set(i, HF[1], "failure", line="RuntimeError: CUDA error: misaligned address")
    trunk.fill("success")
    return trunk


@pytest.fixture
def nobody() -> Iterator[FakeSlack]:
    """Where Slack calls would go if console mode made any: it must stay empty."""
    with FakeSlack() as fake:
        yield fake


class Console:
    """The running console-mode bot, spoken to as GitHub and Slack would."""

    def __init__(self, running: RunningBot, nobody: FakeSlack) -> None:
        self.running = running
        self.nobody = nobody
        self.http = running.client()
        api = running.bot.slack_api
        assert isinstance(api, ConsoleApi)
        self.api = api

    def github(self, trunk: Trunk) -> None:
        for index, delivery in enumerate(trunk.deliveries()):
            body, headers = github_request(delivery["event"], delivery["payload"],
                                           f"d{index}", GITHUB_SECRET)
            assert self.http.post("/github/webhook", content=body,
                                  headers=headers).status_code == 200

    def slack(self, form: dict[str, str]) -> httpx.Response:
        body = urlencode(form).encode()
        return self.http.post("/slack/events", content=body, headers=slack_headers(SECRET, body))

    def command(self, text: str, user: str = "U1") -> httpx.Response:
        return self.slack({
            "token": "legacy", "team_id": "TFAKE", "channel_id": "console",
            "channel_name": "console", "user_id": user, "user_name": user.lower(),
            "command": "/inductor", "text": text, "api_app_id": "A0BOT",
            "response_url": self.nobody.response_url(f"cmd-{text}"), "trigger_id": trigger_id()})

    def click(self, action_id: str, value: str, user: str = "U2") -> httpx.Response:
        payload = {
            "type": "block_actions", "team": {"id": "TFAKE"}, "api_app_id": "A0BOT",
            "user": {"id": user, "username": user.lower(), "team_id": "TFAKE"},
            "token": "legacy", "trigger_id": trigger_id(),
            "actions": [{"type": "button", "action_id": action_id, "value": value,
                         "block_id": f"alert:{value}:actions", "action_ts": action_ts()}],
            "container": {"type": "message", "message_ts": "1.000001", "channel_id": "console",
                          "is_ephemeral": False},
            "channel": {"id": "console", "name": "console"},
            "message": {"ts": "1.000001", "blocks": []},
            "response_url": self.nobody.response_url(f"click-{action_id}")}
        return self.slack({"payload": json.dumps(payload)})

    def shown(self, *needles: str) -> str:
        """Wait for a printed message showing every needle; returns it."""
        return wait_until(lambda: next((m for m in reversed(self.api.transcript)
                                        if all(n in m for n in needles)), None),
                          message=f"a console message showing {needles}")


@pytest.fixture
def console(tmp_path: Path, nobody: FakeSlack) -> Iterator[Console]:
    trunk = incident()
    clock = Clock(trunk.times[-1] + timedelta(hours=1))
    with running_bot(tmp_path, clock, sender_options=FAST_SENDER,
                     slack_signing_secret=SECRET, slack_api_url=nobody.url + "/api/") as running:
        side = Console(running, nobody)
        try:
            yield side
        finally:
            side.http.close()


def test_a_whole_incident_is_shown_answered_and_nothing_reaches_slack(
        console: Console, nobody: FakeSlack) -> None:
    trunk = incident()
    console.github(trunk)

    # the alert as the channel shows it: title, status, the job with its log, the suspect
    parent = console.shown("new message", "[P2] broken-inductor")
    assert parent.startswith("── #console · new message ")
    assert "🔴 Open" in parent
    assert f"❌ {HF_KEY} failing for 3 commits · log" in parent
    log_url = "https://github.com/pytorch/pytorch/actions/runs/"
    log_note = next(line for line in parent.splitlines()
                    if line.startswith("[") and log_url in line)
    assert f"log{log_note.split(']')[0]}]" in parent, "the job line links its log"
    assert (f"• {trunk.shas[4][:7]}" in parent
            and "[inductor] Fuse pointwise ops into templates (#150123) — alice-dev" in parent)
    assert "[ Acknowledge ]" in parent and "[ Resolve ]" in parent and "[ Assign… ▾ ]" in parent

    # a signed /inductor list: the answer comes back in the HTTP response and is printed
    listed = console.command("list")
    assert listed.status_code == 200
    assert listed.json()["response_type"] == "ephemeral"
    assert "1 open alert" in listed.json()["text"] and "`A1`" in listed.json()["text"]
    assert "`A1` [P2] broken-inductor" in console.shown("answer to /inductor list",
                                                      "only @U1 sees this")

    # /inductor ack: answered, the parent visibly edited, a quiet reply in the thread
    acked = console.command("ack")
    assert "You acknowledged A1" in acked.json()["text"]
    edited = console.shown("edited ──", "Acknowledged by @U1")
    assert edited.splitlines()[1:] == [  # what changed, as a reader notices it
        "- 🔴 Open · nobody on it yet", "+ 👀 Acknowledged by @U1",
        "- [ Acknowledge ]  [ Assign… ▾ ]  [ Snooze… ▾ ]  [ Bisect ]  [ Retry failed jobs ]  "
        "[ Resolve ]",
        "+ [ Unacknowledge ]  [ Assign… ▾ ]  [ Snooze… ▾ ]  [ Bisect ]  [ Retry failed jobs ]  "
        "[ Resolve ]"]
    reply = console.shown("reply in the thread of", "Acknowledged by")
    assert reply.splitlines()[1] == "  ↳ 👀 Acknowledged by u1", "named as the command named them"

    # a refused click is answered to the clicker (Slack ignores a click's HTTP body)
    assert console.click("alert_ack", "1").status_code == 200
    assert "already" in console.shown("answer to the click on alert_ack", "only @U2").lower()

    # help is answered in the acknowledgement itself, and printed too
    assert "Usage" in console.command("help").json()["text"]
    console.shown("answer to /inductor help")

    # the App Home tab
    opened = {"token": "legacy", "team_id": "TFAKE", "api_app_id": "A0BOT",
              "type": "event_callback", "event_id": "Ev1", "event_time": 1,
              "event": {"type": "app_home_opened", "user": "U3", "tab": "home"}}
    body = json.dumps(opened).encode()
    assert console.http.post("/slack/events", content=body, headers=slack_headers(
        SECRET, body, content_type="application/json")).status_code == 200
    assert "1 open alert" in console.shown("App Home of @U3")

    assert nobody.calls == [], "console mode called the Slack Web API"
    assert nobody.responses() == [], "console mode posted to a response_url"
    health = console.http.get("/healthz").json()
    assert health["slack"] == "console"
    assert health["config"]["slack_events"] == "enabled (console mode: answers are printed)"


def test_forged_requests_are_refused_in_console_mode_too(console: Console) -> None:
    body = urlencode({"command": "/inductor", "text": "list"}).encode()
    forged = console.http.post("/slack/events", content=body,
                               headers=slack_headers("not-the-secret", body))
    assert forged.status_code == 401
    assert console.api.transcript == []


def test_without_a_signing_secret_slack_events_says_which_setting(tmp_path: Path) -> None:
    with running_bot(tmp_path) as running, running.client() as client:
        answer = client.post("/slack/events", content=b"{}")
        assert answer.status_code == 503
        assert "SLACK_SIGNING_SECRET" in answer.json()["error"]
        config = client.get("/healthz").json()["config"]
        assert "SLACK_SIGNING_SECRET" in config["slack_events"]


def test_a_real_token_later_posts_fresh_messages_instead_of_editing_console_ones(
        tmp_path: Path, nobody: FakeSlack) -> None:
    """Alerts shown in console mode get real parents once Slack is set up; none is edited."""
    trunk = incident()
    clock = Clock(trunk.times[-1] + timedelta(hours=1))
    with running_bot(tmp_path, clock, sender_options=FAST_SENDER,
                     slack_signing_secret=SECRET) as running:
        side = Console(running, nobody)
        side.github(trunk)
        side.shown("new message")
        side.command("ack")
        side.shown("reply in the thread of", "Acknowledged by")
        side.http.close()
    database = str(tmp_path / "bot.db")
    settings = running.bot.settings
    from dataclasses import replace
    live = replace(settings, slack_bot_token="xoxb-test", slack_api_url=nobody.url + "/api/",
                   slack_channel="C0REAL", routes=(Route(channel="C0REAL"),))
    Store(database).migrate()
    bot = Bot(live, clock=clock, sender_options=FAST_SENDER)
    bot.start()
    try:
        [parent] = nobody.wait_for(lambda: nobody.messages("C0REAL"))
        assert "Acknowledged" in json.dumps(parent["blocks"]), "it shows the current state"
        assert nobody.calls_to("chat.update") == [], "no edit of a message Slack never had"
        assert all(c.params.get("channel") == "C0REAL" for c in nobody.calls
                   if c.method.startswith("chat."))
        wait_until(lambda: bot.health_report()["outbox"]["parents_pending"] == 0,
                   message="the outbox settled")
        assert nobody.violations == []
    finally:
        bot.stop()


def test_an_edit_shows_what_changed_or_the_whole_message_when_the_first_is_unknown() -> None:
    shown: list[str] = []
    api = ConsoleApi(shown.append)
    posted = api.call("chat.postMessage", channel="C1", text="*Open* <https://x.example/a|log>")
    api.call("chat.update", channel="C1", ts=posted["ts"],
             text="*Closed* <https://x.example/a|log>")
    api.call("chat.update", channel="C1", ts=posted["ts"],
             text="*Closed* <https://x.example/a|log>")
    api.call("chat.update", channel="C1", ts="1.000009", text="from before a restart")
    assert shown[1] == (f"── #C1 · message {posted['ts']} edited ──\n"
                        "- Open log[1]\n+ Closed log[1]\n\n"), "the link keeps its number"
    assert shown[2] == f"── #C1 · message {posted['ts']} edited (no visible change) ──\n\n"
    assert shown[3] == ("── #C1 · message 1.000009 edited, now reads ──\n"
                        "from before a restart\n\n")
    assert api.transcript == [text.rstrip("\n") for text in shown]
