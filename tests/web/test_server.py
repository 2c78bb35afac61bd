"""The web server as a whole: /healthz, body caps, wrong methods, and /slack/events hosting."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain.route import Route
from bot.web.signatures import sign_github
from tests.support.server import GITHUB_SECRET, GRAFANA_TOKEN, running_bot

LIMIT = 4096
SLACK_SECRET = "slack-signing-secret"


def test_healthz_reports_database_outbox_sources_and_config(tmp_path: Path) -> None:
    with running_bot(tmp_path) as running, running.client() as client:
        answer = client.get("/healthz")
        assert answer.status_code == 200
        report = answer.json()
        assert report["ok"] is True
        assert report["database"] == "ok"
        assert set(report["outbox"]) >= {"parents_pending", "events_pending", "failures"}
        assert report["config"]["github_webhook"] == "enabled"
        assert report["config"]["hud_poller"].startswith("disabled")
        running.bot.health.problem("test", "something is broken")
        unhealthy = client.get("/healthz")
        assert unhealthy.status_code == 503
        assert unhealthy.json()["problems"] == {"test": "something is broken"}


def test_healthz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    with running_bot(tmp_path) as running, running.client() as client:
        running.bot.store.db.execute("DROP TABLE slack_failures")  # the outbox query fails
        answer = client.get("/healthz")
        assert answer.status_code == 503
        assert answer.json()["database"].startswith("error")


def chunks(total: int) -> Iterator[bytes]:
    """A body without Content-Length (chunked): only counting while reading can cap it."""
    sent = 0
    while sent < total:
        piece = b" " * min(1024, total - sent)
        sent += len(piece)
        yield piece


def test_oversize_bodies_get_413_and_store_nothing(tmp_path: Path) -> None:
    with running_bot(tmp_path, max_body_bytes=LIMIT) as running, running.client() as client:
        big = json.dumps({"ref": "refs/heads/main", "pad": "x" * LIMIT}).encode()
        signed = {"X-GitHub-Event": "push", "X-GitHub-Delivery": "big",
                  "X-Hub-Signature-256": sign_github(GITHUB_SECRET, big)}
        assert client.post("/github/webhook", content=big, headers=signed).status_code == 413
        streamed = client.post("/github/webhook", content=chunks(LIMIT + 10), headers=signed)
        assert streamed.status_code == 413
        grafana = client.post("/grafana/webhook", content=big,
                              headers={"Authorization": f"Bearer {GRAFANA_TOKEN}"})
        assert grafana.status_code == 413
        assert client.post("/grafana/webhook", content=chunks(LIMIT * 2), headers={
            "Authorization": f"Bearer {GRAFANA_TOKEN}"}).status_code == 413
        assert running.bot.store.db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
        # just under the limit is read (and then judged on its merits)
        small = b"{}"
        ok = client.post("/github/webhook", content=small, headers={
            "X-GitHub-Event": "ping", "X-Hub-Signature-256": sign_github(GITHUB_SECRET, small)})
        assert ok.status_code == 200


def test_wrong_methods_get_405_and_unknown_paths_404(tmp_path: Path) -> None:
    with running_bot(tmp_path) as running, running.client() as client:
        for path in ("/github/webhook", "/grafana/webhook", "/slack/events"):
            answer = client.get(path)
            assert answer.status_code == 405, path
            assert answer.json()["ok"] is False
            assert "POST" in answer.headers["allow"]
        assert client.post("/healthz").status_code == 405
        assert client.get("/nowhere").status_code == 404


def slack_headers(body: bytes, secret: str = SLACK_SECRET) -> dict[str, str]:
    stamp = str(int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=" + digest.hexdigest(),
            "Content-Type": "application/json"}


def test_slack_events_are_dispatched_to_bolt_with_verification(tmp_path: Path) -> None:
    with running_bot(tmp_path, slack_bot_token="xoxb-test", slack_signing_secret=SLACK_SECRET,
                     slack_api_url="http://127.0.0.1:9/api/", max_body_bytes=LIMIT) as running, \
            running.client() as client:
        assert running.bot.bolt is not None
        body = json.dumps({"type": "url_verification", "challenge": "abc123",
                           "token": "t"}).encode()
        answer = client.post("/slack/events", content=body, headers=slack_headers(body))
        assert answer.status_code == 200
        assert "abc123" in answer.text
        forged = client.post("/slack/events", content=body,
                             headers=slack_headers(body, secret="wrong"))
        assert forged.status_code == 401
        big = b"x" * (LIMIT + 1)
        assert client.post("/slack/events", content=big,
                           headers=slack_headers(big)).status_code == 413
        assert client.get("/healthz").json()["config"]["slack_events"] == "enabled"


@pytest.mark.parametrize(("token", "expected"), [
    (None, "disabled: GITHUB_TOKEN is not set (route ci asks for auto_retry)"),
    ("ghp_test", "every 30s for route ci"),
])
def test_healthz_says_whether_automatic_retries_run(tmp_path: Path, token: str | None,
                                                    expected: str) -> None:
    """A route's auto_retry does nothing without GITHUB_TOKEN: the config says so, as it
    does for the pollers, instead of leaving the operator to wonder why nothing reruns."""
    routes = (Route(name="ci", auto_retry=True), Route(name="quiet"))
    with running_bot(tmp_path, routes=routes, github_token=token) as running, \
            running.client() as client:
        config = client.get("/healthz").json()["config"]
        assert config["auto_retries"] == expected


def test_healthz_says_automatic_retries_are_off_when_no_route_asks(tmp_path: Path) -> None:
    with running_bot(tmp_path) as running, running.client() as client:
        assert client.get("/healthz").json()["config"]["auto_retries"] == (
            "off: no route sets auto_retry")
