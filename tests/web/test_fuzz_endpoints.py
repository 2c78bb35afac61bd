"""Every endpoint under property-based fuzzing, over HTTP against the running server.

Random and mutated bodies, headers, Slack payloads, slash command text and Grafana
notifications, signed (so they reach the parsers and listeners) and unsigned. Whatever
arrives: never a 5xx, always a JSON (or, from Slack's listeners, short text) answer, a
refused request writes nothing, and no secret shows in a response or in the logs.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.web import signatures
from bot.web.signatures import sign_github, sign_grafana
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import broken_trunk, feed, slack_settings
from tests.support.fixtures import fixture_files
from tests.support.server import Clock, RunningBot, running_bot
from tests.support.signing import slack_headers, trigger_id

GITHUB_SECRET = "gh-fuzz-secret-5b1e0c"
SLACK_SECRET = "slack-fuzz-signing-9d47aa"
SLACK_TOKEN = "xoxb-fuzz-token-31c8f2"
GRAFANA_TOKEN = "grafana-fuzz-token-e6a390"
GRAFANA_SECRET = "grafana-fuzz-hmac-08bd7c"
SECRETS = (GITHUB_SECRET, SLACK_SECRET, SLACK_TOKEN, GRAFANA_TOKEN, GRAFANA_SECRET)
LIMIT = 64 * 1024
TABLES = ("deliveries", "commits", "job_results", "cells", "alerts", "alert_jobs",
          "external_alerts")
# deterministic in CI; FUZZ_EXAMPLES=2000 explores further with fresh random examples
EXPLORE = int(os.environ.get("FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXPLORE or 60, deadline=None, derandomize=not EXPLORE,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Records(logging.Handler):
    """Every log record of the server's threads, formatted with its arguments."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


class Server:
    """The running bot, a client for it and its fake Slack, shared by every example."""

    def __init__(self, running: RunningBot, http: httpx.Client, slack: FakeSlack) -> None:
        self.running = running
        self.http = http
        self.slack = slack

    def __repr__(self) -> str:  # hypothesis prints the fixture with every failing example
        return f"Server({self.running.base_url})"

    def counts(self) -> dict[str, int]:
        db = self.running.bot.store.db
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    records = Records()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)  # secrets must not show even in debug logs
    for client_side in ("httpx", "httpcore", "hpack"):
        logging.getLogger(client_side).setLevel(logging.INFO)
    try:
        with FakeSlack() as slack, running_bot(
                tmp_path_factory.mktemp("fuzz"), clock=Clock(), max_body_bytes=LIMIT,
                github_webhook_secret=GITHUB_SECRET, grafana_webhook_token=GRAFANA_TOKEN,
                grafana_webhook_secret=GRAFANA_SECRET,
                **{**slack_settings(slack.url, secret=SLACK_SECRET),
                   "slack_bot_token": SLACK_TOKEN}) as running, running.client() as http:
            trunk = broken_trunk()
            feed(running.bot, trunk, 7, running.clock)  # an open alert for commands to act on
            yield Server(running, http, slack)
    finally:
        root.removeHandler(records)
        root.setLevel(old_level)
    assert len(records.lines) > 100, "the server's logs were captured"
    leaked = [line for line in records.lines if any(s in line for s in SECRETS)]
    assert leaked == [], "a secret was logged"


# --- strategies -----------------------------------------------------------------------------

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62)
           | st.floats(allow_nan=False) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=12)
# what an HTTP client can send as a header value: printable ASCII, no outer whitespace
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126),
                      max_size=40).map(str.strip)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from paths(item, (*prefix, index))


def replaced(document: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    """A deep copy of ``document`` with the node at ``path`` replaced (or deleted)."""
    if not path:
        return value
    out = copy.deepcopy(document)
    node = out
    for step in path[:-1]:
        node = node[step]
    if delete and isinstance(node, dict):
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def mutations(template: Any) -> st.SearchStrategy[Any]:
    """``template`` with one to three nodes replaced by random JSON or deleted."""
    one = st.builds(lambda p, v, d: (p, v, d), st.sampled_from(list(paths(template))[1:]),
                    json_values, st.booleans())

    def apply(changes: list[tuple[tuple[Any, ...], Any, bool]]) -> Any:
        document = template
        for path, value, delete in changes:
            try:
                document = replaced(document, path, value, delete)
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed the path
        return document

    return st.lists(one, min_size=1, max_size=3).map(apply)


def delivery_templates() -> list[dict[str, Any]]:
    trunk = broken_trunk()
    return [trunk.push_delivery(8, 9), *trunk.job_deliveries(8, trunk.job_names[1])]


GITHUB_TEMPLATES = delivery_templates()
github_payloads = st.sampled_from(GITHUB_TEMPLATES).flatmap(
    lambda d: st.tuples(st.just(d["event"]), mutations(d["payload"]) | json_values))
GRAFANA_TEMPLATES = [json.loads(p.read_text()) for p in fixture_files("grafana", "*.json")]
grafana_payloads = st.sampled_from(GRAFANA_TEMPLATES).flatmap(mutations) | json_values

# signed but absurd (#12.11, 13): what broke the parsers, stores and bisects before
HOSTILE_SCALARS = [2**63, -(2**63) - 1, 10**20, 2**64 + 1, 1e308 * 10, "\ud800", "x\udfffy",
                   "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                   "0002-01-01T00:30:00+01:00", "HEAD~3", "-1", "+1", "\u0661", " 1",
                   "<https://evil.example|Re-authenticate here>", "<!channel>"]
hostile_scalars = st.sampled_from(HOSTILE_SCALARS)
nested = st.integers(min_value=60, max_value=3000).map(lambda n: {"deep": json.loads(
    "[" * min(n, 900) + "]" * min(n, 900))} if n < 900 else {"deep": "NESTED"})


def hostile(template: Any) -> st.SearchStrategy[Any]:
    """``template`` with one to three nodes replaced by an absurd value or deep nesting."""
    one = st.tuples(st.sampled_from(list(paths(template))[1:]), hostile_scalars | nested)

    def apply(changes: list[tuple[tuple[Any, ...], Any]]) -> Any:
        document = template
        for path, value in changes:
            try:
                document = replaced(document, path, value, False)
            except (KeyError, IndexError, TypeError):
                continue
        return document

    return st.lists(one, min_size=1, max_size=3).map(apply)


def encode(document: Any, depth: int = 2000) -> bytes:
    """JSON text; a ``"NESTED"`` marker becomes nesting deeper than json.dumps would write."""
    text = json.dumps(document)
    return text.replace('"NESTED"', "[" * depth + "]" * depth).encode()


# --- what every answer must be --------------------------------------------------------------


def check_answer(server: Server, answer: httpx.Response, before: dict[str, int]) -> None:
    assert answer.status_code < 500, (answer.status_code, answer.text)
    body = answer.text
    assert not any(secret in body for secret in SECRETS), "a secret in a response"
    kind = answer.headers.get("content-type", "")
    if body:
        if kind.startswith("application/json"):
            document = answer.json()
            if answer.status_code >= 400 and isinstance(document, dict) and "ok" in document:
                assert document["ok"] is False and document.get("error"), document
        else:
            assert kind.startswith("text/plain"), kind
    if answer.status_code >= 400:
        assert server.counts() == before, f"a refused request ({answer.status_code}) wrote"


def post(server: Server, path: str, body: bytes, headers: dict[str, str]) -> None:
    before = server.counts()
    answer = server.http.post(path, content=body, headers=headers)
    check_answer(server, answer, before)


# --- GitHub ---------------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=2000), event=st.sampled_from(["push", "workflow_job", "ping"])
       | header_text, signature=header_text | st.none(), content_type=header_text)
def test_github_unsigned_or_forged_is_refused(server: Server, body: bytes, event: str,
                                              signature: str | None, content_type: str) -> None:
    headers = {"X-GitHub-Event": event, "Content-Type": content_type,
               "X-GitHub-Delivery": str(uuid.uuid4())}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    before = server.counts()
    answer = server.http.post("/github/webhook", content=body, headers=headers)
    check_answer(server, answer, before)
    assert answer.status_code == 401


@FUZZ
@given(sample=github_payloads, delivery=st.sampled_from(["", "fixed-id"]) | st.uuids().map(str),
       form=st.booleans(), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_github_signed_random_payloads(server: Server, sample: tuple[str, Any], delivery: str,
                                       form: bool, content_type: str) -> None:
    event, payload = sample
    body = json.dumps(payload).encode()
    if form:
        body, content_type = (urlencode({"payload": body.decode()}).encode(),
                              "application/x-www-form-urlencoded")
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
               "Content-Type": content_type, "X-Hub-Signature-256": sign_github(GITHUB_SECRET,
                                                                                body)}
    post(server, "/github/webhook", body, headers)


@FUZZ
@given(body=st.binary(max_size=3000), event=header_text)
def test_github_signed_random_bytes(server: Server, body: bytes, event: str) -> None:
    post(server, "/github/webhook", body, {"X-GitHub-Event": event,
                                           "X-Hub-Signature-256": sign_github(GITHUB_SECRET,
                                                                              body)})


@FUZZ
@given(sample=st.sampled_from(GITHUB_TEMPLATES).flatmap(
    lambda d: st.tuples(st.just(d["event"]), hostile(d["payload"]))))
def test_github_signed_hostile_shapes_are_4xx(server: Server, sample: tuple[str, Any]) -> None:
    event, payload = sample
    body = encode(payload)
    before = server.counts()
    answer = server.http.post("/github/webhook", content=body, headers={
        "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign_github(GITHUB_SECRET, body)})
    check_answer(server, answer, before)
    assert "redeliver" not in answer.text or answer.status_code == 503, answer.text


# --- Grafana --------------------------------------------------------------------------------


@FUZZ
@given(payload=st.sampled_from(GRAFANA_TEMPLATES).flatmap(hostile))
def test_grafana_hostile_shapes_are_4xx(server: Server, payload: Any) -> None:
    post(server, "/grafana/webhook", encode(payload),
         {"Content-Type": "application/json", "Authorization": f"Bearer {GRAFANA_TOKEN}"})


@FUZZ
@given(payload=grafana_payloads, auth=st.sampled_from(["bearer", "token", "hmac"]))
def test_grafana_authorized_random_payloads(server: Server, payload: Any, auth: str) -> None:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if auth == "bearer":
        headers["Authorization"] = f"Bearer {GRAFANA_TOKEN}"
    elif auth == "token":
        headers["X-Grafana-Token"] = GRAFANA_TOKEN
    else:
        headers["X-Grafana-Alerting-Signature"] = sign_grafana(GRAFANA_SECRET, body)
    post(server, "/grafana/webhook", body, headers)


@FUZZ
@given(body=st.binary(max_size=2000), authorization=header_text, token=header_text,
       signature=header_text)
def test_grafana_unauthorized_is_refused(server: Server, body: bytes, authorization: str,
                                         token: str, signature: str) -> None:
    before = server.counts()
    answer = server.http.post("/grafana/webhook", content=body, headers={
        "Authorization": authorization, "X-Grafana-Token": token,
        "X-Grafana-Alerting-Signature": signature})
    check_answer(server, answer, before)
    assert answer.status_code == 401


# --- Slack ----------------------------------------------------------------------------------

command_text = st.text(max_size=80) | st.lists(
    st.sampled_from(["ack", "unack", "assign", "snooze", "unsnooze", "resolve", "bisect",
                     "cancel", "list", "all", "show", "help", "A1", "A999", "1", "me", "<@U2>",
                     "2h", "green", "until", "<@U1|alice>", "-1", "A0", "`x`", "<!channel>"]),
    max_size=5).map(" ".join)


def slack_post(server: Server, body: bytes,
               content_type: str = "application/x-www-form-urlencoded") -> None:
    post(server, "/slack/events", body, slack_headers(SLACK_SECRET, body,
                                                      content_type=content_type))


@FUZZ
@given(text=command_text, user=st.sampled_from(["U1", "U2", ""]) | header_text,
       command=st.sampled_from(["/inductor", "/sheriff"]) | header_text)
def test_slack_slash_commands_with_random_text(server: Server, text: str, user: str,
                                               command: str) -> None:
    form = {"token": "legacy", "team_id": "TFAKE", "channel_id": "C0TEST", "user_id": user,
            "command": command, "text": text, "api_app_id": "A0BOT", "trigger_id": trigger_id(),
            "response_url": server.slack.response_url("fuzz")}
    slack_post(server, urlencode(form).encode())


def block_action(action_id: str, value: Any, extra: Any) -> dict[str, Any]:
    return {"type": "block_actions", "user": {"id": "U1"}, "team": {"id": "TFAKE"},
            "api_app_id": "A0BOT", "trigger_id": trigger_id(),
            "actions": [{"type": "button", "action_id": action_id, "value": value,
                         "block_id": extra if isinstance(extra, str) else "alert:1:x"}],
            "container": {"type": "message", "channel_id": "C0TEST", "message_ts": "1.2"},
            "channel": {"id": "C0TEST"}, "response_url": "RESPONSE_URL"}


ACTION_IDS = ["alert_ack", "alert_unack", "alert_bisect", "alert_bisect_cancel",
              "alert_resolve", "alert_assign", "alert_snooze", "unknown_action"]


@FUZZ
@given(template=st.builds(block_action, st.sampled_from(ACTION_IDS) | header_text,
                          st.sampled_from(["1", "2", "999", "1|2h"]) | json_values,
                          json_values).flatmap(mutations),
       raw=st.booleans())
@example(template={"type": "block_actions", "actions": []}, raw=False)
@example(template={"type": "block_actions", "actions": [7]}, raw=True)
@example(template={"type": "block_actions", "user": 5, "actions": [{"action_id": "a"}]},
         raw=False)
def test_slack_interactive_payloads(server: Server, template: Any, raw: bool) -> None:
    text = json.dumps(template).replace("RESPONSE_URL", server.slack.response_url("fuzz"))
    if raw:  # a JSON body where Slack would send a form
        slack_post(server, text.encode(), content_type="application/json")
    else:
        slack_post(server, urlencode({"payload": text}).encode())


@FUZZ
@given(template=st.builds(block_action, st.sampled_from(ACTION_IDS),
                          st.sampled_from(["1", "-1", "+1", "\u0661", " 1", "1|2h", "-1|2h"]),
                          st.just("alert:1:x")).flatmap(hostile),
       raw=st.booleans())
def test_slack_hostile_shapes(server: Server, template: Any, raw: bool) -> None:
    text = encode(template).decode().replace("RESPONSE_URL",
                                             server.slack.response_url("fuzz"))
    if raw:
        slack_post(server, text.encode(), content_type="application/json")
    else:
        slack_post(server, urlencode({"payload": text}).encode())


@FUZZ
@example(body=b"null", content_type="application/json")
@example(body=b"[1, 2]", content_type="application/json")
@example(body=b"payload=not-json", content_type="application/x-www-form-urlencoded")
@example(body=b'{"type": "event_callback", "event": 3}', content_type="application/json")
@given(body=st.binary(max_size=1000) | json_values.map(lambda v: json.dumps(v).encode()),
       content_type=st.sampled_from(["application/json", "application/x-www-form-urlencoded",
                                     "text/plain"]))
def test_slack_signed_random_bodies(server: Server, body: bytes, content_type: str) -> None:
    slack_post(server, body, content_type=content_type)


@FUZZ
@given(timestamp=header_text, signature=header_text,
       # over HTTP a request ages while it waits for a busy machine: +301 s could arrive
       # within the window, so the exact boundary is checked with a fixed clock below
       skew=st.sampled_from([None, -301, 360, -86400]))
@example(timestamp="not-a-number", signature="v0=00", skew=None)
@example(timestamp="", signature="", skew=None)
def test_slack_bad_signatures_and_stale_timestamps_are_refused(
        server: Server, timestamp: str, signature: str, skew: int | None) -> None:
    body = urlencode({"command": "/inductor", "text": "list", "user_id": "U1"}).encode()
    if skew is None:
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    else:  # correctly signed, but more than five minutes off
        headers = slack_headers(SLACK_SECRET, body, timestamp=int(time.time()) + skew)
    before = server.counts()
    answer = server.http.post("/slack/events", content=body, headers=headers)
    check_answer(server, answer, before)
    assert answer.status_code == 401


# --- everything else ------------------------------------------------------------------------


@FUZZ
@given(method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST"]),
       path=st.sampled_from(["/healthz", "/github/webhook", "/grafana/webhook", "/slack/events",
                             "/", "/nope"]) | header_text.map(lambda p: "/" + p.lstrip("/")),
       query=header_text)
def test_any_method_and_path(server: Server, method: str, path: str, query: str) -> None:
    before = server.counts()
    try:
        answer = server.http.request(method, path, params={"q": query})
    except httpx.InvalidURL:
        return
    check_answer(server, answer, before)


def test_oversize_bodies_are_refused_by_every_endpoint(server: Server) -> None:
    big = b"{" + b" " * LIMIT + b"}"
    for path in ("/github/webhook", "/grafana/webhook", "/slack/events"):
        before = server.counts()
        answer = server.http.post(path, content=big, headers={
            "X-Hub-Signature-256": sign_github(GITHUB_SECRET, big),
            "Authorization": f"Bearer {GRAFANA_TOKEN}",
            **slack_headers(SLACK_SECRET, big)})
        check_answer(server, answer, before)
        assert answer.status_code == 413, path


def test_signatures_are_compared_in_constant_time(server: Server) -> None:
    """Every secret comparison goes through ``hmac.compare_digest``."""
    body = b'{"zen": "x"}'
    compare = mock.Mock(wraps=hmac.compare_digest)
    with mock.patch.object(signatures.hmac, "compare_digest", compare):
        assert signatures.verify_github(GITHUB_SECRET, body, sign_github(GITHUB_SECRET, body))
        assert signatures.verify_grafana_hmac(GRAFANA_SECRET, body,
                                              sign_grafana(GRAFANA_SECRET, body))
        assert signatures.verify_bearer(GRAFANA_TOKEN, f"Bearer {GRAFANA_TOKEN}", None)
        assert not signatures.verify_github(GITHUB_SECRET, body, "sha256=" + "0" * 64)
    assert compare.call_count == 4
    import slack_sdk.signature as slack_signature

    with mock.patch.object(slack_signature.hmac, "compare_digest", compare):
        headers = slack_headers(SLACK_SECRET, body)
        verifier = slack_signature.SignatureVerifier(SLACK_SECRET)
        assert verifier.is_valid(body, headers["X-Slack-Request-Timestamp"],
                                 headers["X-Slack-Signature"])
    assert compare.call_count == 5
    digest = hashlib.sha256(body).hexdigest()
    assert digest not in SECRETS


def test_slack_verification_refuses_malformed_and_stale_headers() -> None:
    body = b"command=%2Finductor&text=list"
    now = time.time()
    fresh = str(int(now))
    good = signatures.sign_slack(SLACK_SECRET, body, fresh)
    assert signatures.verify_slack(SLACK_SECRET, body, fresh, good, now)
    assert not signatures.verify_slack(SLACK_SECRET, body + b"x", fresh, good, now)
    assert not signatures.verify_slack("", body, fresh, good, now)
    stale = str(int(now) - 301)
    assert not signatures.verify_slack(SLACK_SECRET, body, stale,
                                       signatures.sign_slack(SLACK_SECRET, body, stale), now)
    for timestamp, signature in (("soon", good), ("\u0663", good), (fresh, "v0=\u00e9"),
                                 (None, good), (fresh, None), (" ", good)):
        assert not signatures.verify_slack(SLACK_SECRET, body, timestamp, signature, now)
