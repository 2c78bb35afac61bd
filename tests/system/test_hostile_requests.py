"""#12.10, 11, 13: signed but hostile requests against the real ``serve`` process.

Replayed Slack requests (the same signed bytes within the five-minute window) act once;
signed absurd input (deep nesting, huge integers, impossible dates, lone surrogates,
refs where a sha belongs) gets a 400 naming the problem, never a 5xx or a "redeliver";
alert ids are ASCII digits only; a ``Retry-After`` of a day is clamped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.web.signatures import sign_github
from tests.fakes.slack_api import FakeSlack
from tests.support.bot_process import (
    CHANNEL,
    GITHUB_SECRET,
    SIGNING_SECRET,
    BotProcess,
    bot_process,
    broken,
)
from tests.support.signing import slack_headers
from tests.support.waiting import wait_until


@pytest.fixture(scope="module")
def bot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BotProcess]:
    with FakeSlack() as slack, bot_process(tmp_path_factory.mktemp("hostile"), slack) as bot:
        bot.feed(broken())
        bot.wait_for_parent()
        yield bot


def alert_state(bot: BotProcess) -> tuple[Any, ...]:
    [row] = bot.query("SELECT id, acked_by, state FROM alerts")
    return row


def events(bot: BotProcess, kind: str) -> int:
    return bot.query("SELECT count(*) FROM alert_events WHERE kind = ?", kind)[0][0]


def replay(bot: BotProcess, body: bytes, headers: dict[str, str]) -> int:
    return bot.client.post("/slack/events", content=body, headers=headers).status_code


# --- replays ---------------------------------------------------------------------------------


def test_a_replayed_click_does_not_act_again(bot: BotProcess) -> None:
    alert_id = alert_state(bot)[0]
    body, answer = bot.click("alert_ack", str(alert_id), "ack-1")
    assert answer.status_code == 200
    headers = slack_headers(SIGNING_SECRET, body)  # what an eavesdropper captured
    wait_until(lambda: alert_state(bot)[1] == "U1", message="the ack")
    bot.command(f"unack A{alert_id}", "unack-1")
    wait_until(lambda: alert_state(bot)[1] is None, message="the unack")
    acks = events(bot, "acknowledged")
    assert acks >= 1
    assert replay(bot, body, headers) == 200  # acknowledged, as Slack expects
    assert replay(bot, body, headers) == 200
    unack_body, _ = bot.command(f"unack A{alert_id}", "unack-2")  # a later, real command
    bot.slack.wait_for(lambda: bot.slack.responses("unack-2"), timeout=10)
    assert alert_state(bot)[1] is None, "the replayed click acknowledged the alert again"
    assert events(bot, "acknowledged") == acks


def test_a_replayed_command_does_not_act_again(bot: BotProcess) -> None:
    alert_id = alert_state(bot)[0]
    body, _ = bot.command(f"ack A{alert_id}", "cmd-ack")
    headers = slack_headers(SIGNING_SECRET, body)
    bot.slack.wait_for(lambda: bot.slack.responses("cmd-ack"), timeout=10)
    bot.command(f"unack A{alert_id}", "cmd-unack")
    bot.slack.wait_for(lambda: bot.slack.responses("cmd-unack"), timeout=10)
    acks = events(bot, "acknowledged")
    assert replay(bot, body, headers) == 200
    bot.command("list", "cmd-list")  # the list answer comes after the replay was handled
    bot.slack.wait_for(lambda: bot.slack.responses("cmd-list"), timeout=10)
    assert len(bot.slack.responses("cmd-ack")) == 1, "the replay was answered again"
    assert alert_state(bot)[1] is None
    assert events(bot, "acknowledged") == acks


# --- absurd signed input ---------------------------------------------------------------------


def github(bot: BotProcess, event: str, body: bytes) -> tuple[int, str]:
    answer = bot.client.post("/github/webhook", content=body, headers={
        "X-GitHub-Event": event, "X-GitHub-Delivery": f"hostile-{len(body)}-{hash(body)}",
        "Content-Type": "application/json", "X-Hub-Signature-256": sign_github(GITHUB_SECRET,
                                                                               body)})
    return answer.status_code, answer.text


def job_payload(**changes: Any) -> dict[str, Any]:
    trunk = broken()
    payload = trunk.job_deliveries(7, trunk.job_names[1])[0]["payload"]
    payload["workflow_job"].update(changes)
    return payload


@pytest.mark.parametrize(("event", "body", "reason"), [
    ("workflow_job", b"[" * 100_000 + b"]" * 100_000, "nested"),
    ("workflow_job", b'{"a": ' * 5000 + b"1" + b"}" * 5000, "nested"),
    ("workflow_job", json.dumps(job_payload(id=2**64)).encode(), "out of range"),
    ("workflow_job", json.dumps(job_payload(run_attempt=-(2**63) - 1)).encode(),
     "out of range"),
    ("workflow_job", json.dumps(job_payload(completed_at="9999-12-31T23:59:59-01:00")).encode(),
     "out of range"),
    ("workflow_job", json.dumps(job_payload(started_at="0002-01-01T00:30:00+01:00")).encode(),
     "out of range"),
    ("workflow_job", json.dumps(job_payload(name="test (x, 1, 2)\ud800")).encode(),
     "surrogate"),
    ("workflow_job", json.dumps(job_payload(head_sha="HEAD~3")).encode(), "sha"),
    ("workflow_job", b'{"workflow_job": {"id": NaN}}', "NaN"),
    ("workflow_job", b'{"x": 1e999}', "out of range"),
])
def test_absurd_signed_github_input_is_a_400_with_the_reason(bot: BotProcess, event: str,
                                                             body: bytes, reason: str) -> None:
    before = bot.query("SELECT count(*) FROM deliveries")[0][0]
    status, text = github(bot, event, body)
    assert status == 400, text
    assert reason in text and "redeliver" not in text, text
    assert bot.query("SELECT count(*) FROM deliveries")[0][0] == before


def test_a_push_naming_a_ref_instead_of_a_sha_is_refused(bot: BotProcess) -> None:
    push = broken().push_delivery(7, 7)["payload"]
    push["commits"][0]["id"] = "HEAD~3"
    status, text = github(bot, "push", json.dumps(push).encode())
    assert status == 400 and "sha" in text, text


@pytest.mark.parametrize("payload", [
    '{"type": "block_actions", "actions": ' + "[" * 50_000 + "]" * 50_000 + "}",
    '{"type": "block_actions", "user": {"id": "U1\\ud800"}, "actions": [{"action_id": "x"}]}',
    '{"type": "block_actions", "user": {"id": "U1"}, "n": 18446744073709551616, '
    '"actions": [{"action_id": "x"}]}',
])
def test_absurd_signed_slack_input_is_a_400(bot: BotProcess, payload: str) -> None:
    from urllib.parse import urlencode

    body = urlencode({"payload": payload}).encode()
    answer = bot.slack_post(body)
    assert answer.status_code == 400, answer.text
    answer = bot.slack_post(payload.encode(), content_type="application/json")
    assert answer.status_code == 400, answer.text


# --- strict ids, clamped waits ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["-1", "+1", "\u0661", " 1", "1 ", "01x", "1e0", "\uff11"])
def test_button_values_that_are_not_plain_digits_name_no_alert(bot: BotProcess,
                                                               value: str) -> None:
    alert_id = alert_state(bot)[0]
    assert alert_id == 1
    key = f"bad-id-{value.encode().hex()}"
    bot.command(f"unack A{alert_id}", f"pre-{key}")
    bot.slack.wait_for(lambda: bot.slack.responses(f"pre-{key}"), timeout=10)
    _, answer = bot.click("alert_ack", value, key)
    assert answer.status_code == 200
    [reply] = bot.slack.wait_for(lambda: bot.slack.responses(key), timeout=10)
    assert "does not name an alert" in reply["text"], reply
    assert alert_state(bot)[1] is None


def test_a_retry_after_of_a_day_is_clamped(bot: BotProcess) -> None:
    alert_id = alert_state(bot)[0]
    bot.slack.fail_next("chat.update", status=429, retry_after=100_000)
    bot.command(f"ack A{alert_id}", "clamp-ack")  # an edit of the parent is due
    wait_until(lambda: bot.query("SELECT retry_at FROM slack_failures"), timeout=15,
               message="the 429 to be recorded")
    [(retry_at,)] = bot.query("SELECT retry_at FROM slack_failures")
    wait = datetime.fromisoformat(retry_at) - datetime.now(UTC)
    assert wait <= timedelta(minutes=5), wait
    code, report = bot.health()
    assert report["outbox"]["failures"][0]["target"] == f"parent:{alert_id}"
    assert CHANNEL in json.dumps(report)
