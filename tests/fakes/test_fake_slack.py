"""The fake Slack server behaves like Slack for a real slack_sdk.WebClient, faults included."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from tests.fakes.slack_api import FakeSlack, parse_params

CHANNEL = "C0ALERTS"
TS = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(
        users=[{"id": "U1", "name": "alice", "email": "alice@example.com"}],
        usergroups={"S1": ["U1", "U2"]},
    ) as server:
        yield server


def client_for(fake: FakeSlack, **kwargs: object) -> WebClient:
    """A client with no retry handlers unless asked: faults must reach the test as errors."""
    kwargs.setdefault("retry_handlers", [])
    return WebClient(token="xoxb-test", base_url=fake.url + "/api/", **kwargs)  # type: ignore[arg-type]


def test_post_reply_update_round_trip(fake: FakeSlack) -> None:
    client = client_for(fake)
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*broken*"}}]
    metadata = {"event_type": "inductor_alert", "event_payload": {"alert_id": 7}}
    parent = client.chat_postMessage(
        channel=CHANNEL, text="broken", blocks=blocks, metadata=metadata
    )
    assert parent["ok"] and parent["channel"] == CHANNEL and TS.match(parent["ts"])
    assert parent["message"]["blocks"] == blocks

    reply = client.chat_postMessage(channel=CHANNEL, thread_ts=parent["ts"], text="job joined")
    assert float(reply["ts"]) > float(parent["ts"])
    updated = client.chat_update(channel=CHANNEL, ts=parent["ts"], text="acked", blocks=[])
    assert updated["ts"] == parent["ts"]

    [top] = fake.messages(CHANNEL)
    assert top["text"] == "acked" and top["reply_count"] == 1 and "edited" in top
    assert top["metadata"] == metadata
    assert [m["text"] for m in fake.replies(CHANNEL, parent["ts"])] == ["job joined"]

    history = client.conversations_history(channel=CHANNEL)["messages"]
    assert [m["ts"] for m in history] == [parent["ts"]]  # replies are not in history
    assert "metadata" not in history[0]
    with_meta = client.conversations_history(channel=CHANNEL, include_all_metadata=True)
    assert with_meta["messages"][0]["metadata"]["event_payload"] == {"alert_id": 7}

    thread = client.conversations_replies(channel=CHANNEL, ts=parent["ts"])["messages"]
    assert [m["text"] for m in thread] == ["acked", "job joined"]
    assert fake.violations == []


def test_form_encoded_json_fields_are_decoded(fake: FakeSlack) -> None:
    blocks = [{"type": "divider"}]
    client_for(fake).api_call(
        "chat.postMessage",
        params={"channel": CHANNEL, "text": "t", "blocks": json.dumps(blocks)},
    )
    assert fake.calls_to("chat.postMessage")[0].params["blocks"] == blocks
    assert fake.messages(CHANNEL)[0]["blocks"] == blocks


def test_parse_params_merges_query_and_multipart() -> None:
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="channel"\r\n\r\nC1\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="metadata"\r\n\r\n'
        b'{"event_type": "e", "event_payload": {}}\r\n--XX--\r\n'
    )
    params = parse_params("multipart/form-data; boundary=XX", body, "limit=5")
    metadata = {"event_type": "e", "event_payload": {}}
    assert params == {"limit": "5", "channel": "C1", "metadata": metadata}


def test_timestamps_strictly_increase_under_concurrent_posts(fake: FakeSlack) -> None:
    client = client_for(fake)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda i: client.chat_postMessage(channel=CHANNEL, text=str(i)), range(20))
        )
    stored = [m["ts"] for m in fake.messages(CHANNEL)]
    assert sorted(r["ts"] for r in results) == stored
    assert all(TS.match(ts) for ts in stored)
    assert [float(t) for t in stored] == sorted({float(t) for t in stored})


def test_deterministic_timestamps_from_start_ts() -> None:
    with FakeSlack(start_ts=1700000000.0) as fake:
        client = client_for(fake)
        first = client.chat_postMessage(channel=CHANNEL, text="a")["ts"]
        second = client.chat_postMessage(channel=CHANNEL, text="b")["ts"]
    assert (first, second) == ("1700000000.000100", "1700000000.000200")


def test_history_newest_first_with_limit_oldest_and_cursor(fake: FakeSlack) -> None:
    client = client_for(fake)
    ts = [client.chat_postMessage(channel=CHANNEL, text=str(i))["ts"] for i in range(5)]
    page = client.conversations_history(channel=CHANNEL, limit=2)
    assert [m["ts"] for m in page["messages"]] == [ts[4], ts[3]] and page["has_more"]
    rest = client.conversations_history(
        channel=CHANNEL, limit=10, cursor=page["response_metadata"]["next_cursor"]
    )
    assert [m["ts"] for m in rest["messages"]] == [ts[2], ts[1], ts[0]] and not rest["has_more"]
    newer = client.conversations_history(channel=CHANNEL, oldest=ts[2])
    assert [m["ts"] for m in newer["messages"]] == [ts[4], ts[3]]


def test_unknown_method_and_missing_required_argument_are_violations(fake: FakeSlack) -> None:
    client = client_for(fake)
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("chat.postMesage", json={"channel": CHANNEL, "text": "typo"})
    assert unknown.value.response["error"] == "unknown_method"
    with pytest.raises(SlackApiError) as missing:
        client.chat_postMessage(channel=None, text="no channel")  # type: ignore[arg-type]
    assert missing.value.response["error"] == "invalid_arguments"
    problems = [(v.method, v.problem) for v in fake.violations]
    assert problems == [
        ("chat.postMesage", "unknown method"),
        ("chat.postMessage", "missing required channel"),
    ]
    assert fake.messages(CHANNEL) == []


def test_extra_params_newer_than_the_spec_are_accepted(fake: FakeSlack) -> None:
    client_for(fake).chat_postMessage(
        channel=CHANNEL,
        text="x",
        metadata={"event_type": "e", "event_payload": {}},
        unfurl_links=False,
    )
    assert fake.violations == []


def test_block_kit_limits_are_enforced(fake: FakeSlack) -> None:
    client = client_for(fake)
    too_many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=too_many)
    assert err.value.response["error"] == "invalid_blocks"
    long_section = [{"type": "section", "text": {"type": "mrkdwn", "text": "a" * 3001}}]
    with pytest.raises(SlackApiError):
        client.chat_postMessage(channel=CHANNEL, text="x", blocks=long_section)
    assert [v.problem for v in fake.violations] == ["invalid_blocks", "invalid_blocks"]


def test_missing_or_bad_token(fake: FakeSlack) -> None:
    anonymous = WebClient(token=None, base_url=fake.url + "/api/", retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        anonymous.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response["error"] == "not_authed"
    bad = WebClient(token="nope", base_url=fake.url + "/api/", retry_handlers=[])
    with pytest.raises(SlackApiError) as err:
        bad.auth_test()
    assert err.value.response["error"] == "invalid_auth"
    assert fake.messages(CHANNEL) == []


def test_rate_limit_surfaces_as_429_with_retry_after(fake: FakeSlack) -> None:
    # The default WebClient has only a connection-error retry handler, so 429 reaches us.
    client = WebClient(token="xoxb-test", base_url=fake.url + "/api/")
    fake.fail_next("chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "7"
    assert err.value.response["error"] == "ratelimited"
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]  # consumed once
    assert len(fake.messages(CHANNEL)) == 1


def test_server_error_and_api_error(fake: FakeSlack) -> None:
    client = client_for(fake)
    fake.fail_next("chat.update", status=500)
    fake.fail_next("chat.postMessage", error="channel_not_found")
    with pytest.raises(SlackApiError) as server_error:
        client.chat_update(channel=CHANNEL, ts="1.000000", text="x")
    assert server_error.value.response.status_code == 500
    with pytest.raises(SlackApiError) as api_error:
        client.chat_postMessage(channel=CHANNEL, text="x")
    assert api_error.value.response.status_code == 200
    assert api_error.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as not_found:
        client.chat_update(channel=CHANNEL, ts="1.000000", text="x")
    assert not_found.value.response["error"] == "message_not_found"


def test_outage_until_cleared(fake: FakeSlack) -> None:
    client = client_for(fake)
    fake.set_outage(["chat.postMessage"], status=503)
    for _ in range(3):
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel=CHANNEL, text="x")
        assert err.value.response.status_code == 503
    assert client.auth_test()["user_id"] == "UBOT"  # other methods unaffected
    fake.set_outage(None, error="fatal_error")
    with pytest.raises(SlackApiError):
        client.auth_test()
    fake.clear_outage()
    assert client.chat_postMessage(channel=CHANNEL, text="x")["ok"]


def test_delay_provokes_client_timeout_but_slack_still_accepts(fake: FakeSlack) -> None:
    client = client_for(fake, timeout=0.2)
    fake.fail_next("chat.postMessage", delay=2.0)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        client.chat_postMessage(channel=CHANNEL, text="slow")
    assert time.monotonic() - started < 1.5
    fake.stop()  # cuts the server's remaining delay short
    assert fake.wait_for(lambda: len(fake.messages(CHANNEL)) == 1, timeout=2)


def test_accept_then_drop_stores_post_but_client_errors(fake: FakeSlack) -> None:
    client = client_for(fake)
    fake.accept_then_drop("chat.postMessage")
    with pytest.raises(Exception) as err:  # noqa: B017 - urllib's exact type varies
        client.chat_postMessage(channel=CHANNEL, text="ghost")
    assert not isinstance(err.value, SlackApiError)
    assert [m["text"] for m in fake.messages(CHANNEL)] == ["ghost"]


def test_a_request_cut_off_mid_body_is_not_a_call(fake: FakeSlack) -> None:
    """A client killed while sending (a SIGKILLed bot) leaves nothing in Slack, no violation."""
    body = json.dumps({"channel": CHANNEL, "ts": "1.000001", "text": "half"}).encode()
    host, port = fake.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(b"POST /api/chat.update HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer xoxb-test\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        conn.shutdown(socket.SHUT_WR)
        assert conn.recv(1024) == b""  # closed without an answer
    client = client_for(fake)
    client.chat_postMessage(channel=CHANNEL, text="whole")
    assert [c.method for c in fake.calls] == ["chat.postMessage"]
    assert fake.violations == []


def test_default_client_retries_a_dropped_post_and_duplicates_it(fake: FakeSlack) -> None:
    """Why the bot must not rely on slack_sdk's default retry for posts: it re-sends."""
    client = WebClient(token="xoxb-test", base_url=fake.url + "/api/")
    fake.fail_next("chat.postMessage", drop=True)
    client.chat_postMessage(channel=CHANNEL, text="twice")
    assert [m["text"] for m in fake.messages(CHANNEL)] == ["twice", "twice"]


def test_min_post_interval_rate_limits_per_channel() -> None:
    with FakeSlack(min_post_interval=60) as fake:
        client = client_for(fake)
        client.chat_postMessage(channel=CHANNEL, text="a")
        client.chat_postMessage(channel="C0OTHER", text="b")
        with pytest.raises(SlackApiError) as err:
            client.chat_postMessage(channel=CHANNEL, text="c")
        assert err.value.response.status_code == 429
        assert len(fake.messages(CHANNEL)) == 1


def test_other_methods(fake: FakeSlack) -> None:
    client = client_for(fake)
    parent = client.chat_postMessage(channel=CHANNEL, text="p")["ts"]
    reply = client.chat_postMessage(channel=CHANNEL, text="r", thread_ts=parent)["ts"]
    link = client.chat_getPermalink(channel=CHANNEL, message_ts=reply)["permalink"]
    assert link.endswith(f"p{reply.replace('.', '')}?thread_ts={parent}&cid={CHANNEL}")

    assert client.chat_postEphemeral(channel=CHANNEL, user="U1", text="psst")["message_ts"]
    assert [e["text"] for e in fake.ephemerals(CHANNEL)] == ["psst"]

    home = {"type": "home", "blocks": [{"type": "divider"}]}
    assert client.views_publish(user_id="U1", view=home)["view"]["id"].startswith("V")
    assert fake.home_view("U1")["blocks"] == home["blocks"]  # type: ignore[index]
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "Snooze"}, "blocks": []}
    client.views_open(trigger_id="123.456", view=modal)
    assert fake.opened_views[0]["trigger_id"] == "123.456"

    assert client.users_info(user="U1")["user"]["name"] == "alice"
    assert client.users_lookupByEmail(email="ALICE@example.com")["user"]["id"] == "U1"
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"
    assert client.usergroups_users_list(usergroup="S1")["users"] == ["U1", "U2"]
    assert client.auth_test()["bot_id"] == "BBOT"

    client.chat_delete(channel=CHANNEL, ts=reply)
    assert fake.replies(CHANNEL, parent) == []
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=CHANNEL, text="x", thread_ts="9.000001")
    assert err.value.response["error"] == "thread_not_found"
    assert fake.violations == []


def test_spec_known_but_unimplemented_method_is_loud(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as err:
        client_for(fake).conversations_join(channel=CHANNEL)
    assert err.value.response["error"] == "fake_not_implemented"


def test_wait_for_wakes_on_change_and_times_out(fake: FakeSlack) -> None:
    client = client_for(fake)
    poster = threading.Thread(target=lambda: client.chat_postMessage(channel=CHANNEL, text="x"))
    poster.start()
    assert fake.wait_for(lambda: fake.messages(CHANNEL), timeout=5)[0]["text"] == "x"
    poster.join(timeout=5)
    with pytest.raises(TimeoutError):
        fake.wait_for(lambda: len(fake.messages(CHANNEL)) > 1, timeout=0.05)


def test_reset_forgets_state_but_keeps_users(fake: FakeSlack) -> None:
    client = client_for(fake)
    client.chat_postMessage(channel=CHANNEL, text="x")
    fake.fail_next("auth.test", status=500)
    fake.reset()
    assert fake.calls == [] and fake.messages(CHANNEL) == []
    assert client.auth_test()["ok"]  # the queued fault is gone
    assert client.users_info(user="U1")["ok"]


def test_spec_path_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = {"paths": {"/auth.test": {"post": {"parameters": []}}}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    monkeypatch.setenv("SLACK_OPENAPI_SPEC", str(path))
    with FakeSlack() as fake:
        client = client_for(fake)
        assert client.auth_test()["ok"]
        with pytest.raises(SlackApiError):
            client.chat_postMessage(channel=CHANNEL, text="x")
        assert [v.method for v in fake.violations] == ["chat.postMessage"]
