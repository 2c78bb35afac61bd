"""``POST /grafana/webhook`` over real HTTP: authentication, incidents, staleness, fixtures."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.domain.model import Commit, JobResult
from bot.store import alerts as alert_store
from bot.web.signatures import GRAFANA_SIGNATURE_HEADER, sign_grafana
from tests.support.fixtures import fixture_json
from tests.support.server import GRAFANA_SECRET, GRAFANA_TOKEN, Clock, RunningBot, running_bot
from tests.support.trunk import BASE_TIME, REPO, sha_for

FINGERPRINT = "3c1f0a9e7b2d4c11"


def fixture(name: str) -> dict[str, Any]:
    return fixture_json("grafana", f"alert.{name}.json")


def post(client: httpx.Client, payload: Any, *, token: str | None = GRAFANA_TOKEN,
         raw: bytes | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return client.post("/grafana/webhook", content=body, headers=sent)


def external_rows(running: RunningBot) -> list[dict[str, Any]]:
    return list(running.bot.store.db.query("SELECT * FROM external_alerts ORDER BY id"))


def incident(running: RunningBot, alert_id: int) -> dict[str, Any]:
    return next(running.bot.store.db.query("SELECT * FROM alerts WHERE id = ?", [alert_id]))


def event_kinds(running: RunningBot, alert_id: int) -> list[str]:
    return [e.kind for e in alert_store.events(running.bot.store.db, alert_id)]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningBot]:
    with running_bot(tmp_path, clock=Clock(BASE_TIME + timedelta(hours=6)),
                     grafana_webhook_secret=GRAFANA_SECRET) as bot:
        yield bot


@pytest.fixture
def client(running: RunningBot) -> Iterator[httpx.Client]:
    with running.client() as c:
        yield c


def test_authentication(running: RunningBot, client: httpx.Client) -> None:
    firing = fixture("firing")
    body = json.dumps(firing).encode()
    assert post(client, firing, token=None).status_code == 401
    assert post(client, firing, token="wrong").status_code == 401
    forged = post(client, firing, token=None,
                  headers={GRAFANA_SIGNATURE_HEADER: sign_grafana("other", body)})
    assert forged.status_code == 401
    assert external_rows(running) == []
    by_header = post(client, firing, token=None, headers={"X-Grafana-Token": GRAFANA_TOKEN})
    assert by_header.status_code == 200
    by_hmac = post(client, None, raw=body + b"\n", token=None,
                   headers={GRAFANA_SIGNATURE_HEADER: sign_grafana(GRAFANA_SECRET, body + b"\n")})
    assert by_hmac.status_code == 200
    assert by_hmac.json()["alerts"][0]["outcome"] == "duplicate"  # same alert, new body
    assert post(client, firing).json() == {"ok": True, "duplicate": True}  # same body


def test_firing_then_resolved_fixture_makes_one_standalone_incident(
        running: RunningBot, client: httpx.Client) -> None:
    answer = post(client, fixture("firing"))
    assert answer.status_code == 200
    [outcome] = answer.json()["alerts"]
    assert outcome["outcome"] == "created"
    [row] = external_rows(running)
    assert row["fingerprint"] == FINGERPRINT
    assert row["source"] == "grafana"
    assert row["title"] == "Inductor jobs failing for three commits in a row on Trunk"
    assert (row["status"], row["team"], row["priority"]) == ("firing", "broken-inductor", "P2")
    assert row["reason"] == "Failure_Threshold=1, Number_of_Jobs_Failing=1"
    links = json.loads(row["links"])
    assert links["generator"].startswith("https://pytorchci.grafana.net/alerting/grafana/")
    assert links["dashboard"] == "https://pytorchci.grafana.net/d/inductor-trunk?orgId=1"
    assert links["silence"].startswith("https://pytorchci.grafana.net/alerting/silence/")
    assert links["runbook"] == "https://github.com/pytorch/test-infra/wiki/Alerts"
    assert row["starts_at"].startswith("2025-12-09T17:29:00")
    parent = incident(running, row["alert_id"])
    assert (parent["kind"], parent["state"], parent["team"], parent["priority"]) == (
        "grafana", "open", "broken-inductor", "P2")
    assert parent["route"] == "inductor"
    assert event_kinds(running, row["alert_id"]) == ["grafana_firing"]

    resolved = post(client, fixture("resolved")).json()
    assert resolved["alerts"][0]["outcome"] == "resolved"
    [row] = external_rows(running)
    assert row["status"] == "resolved"
    assert row["reason"] == "Failure_Threshold=1, Number_of_Jobs_Failing=0"
    parent = incident(running, row["alert_id"])
    assert parent["state"] == "resolved"
    assert parent["resolve_reason"] == "resolved in Grafana"
    assert event_kinds(running, row["alert_id"]) == ["grafana_firing", "grafana_resolved",
                                                     "resolved"]
    assert [r["id"] for r in running.bot.store.db.query("SELECT id FROM alerts")] == [
        row["alert_id"]]


def test_stale_and_duplicate_notifications_are_ignored(
        running: RunningBot, client: httpx.Client) -> None:
    post(client, fixture("firing"))
    post(client, fixture("resolved"))
    [row] = external_rows(running)
    version = incident(running, row["alert_id"])["version"]
    # a firing of the same episode delivered late (different body, same startsAt)
    late = fixture("firing")
    late["alerts"][0]["values"]["Number_of_Jobs_Failing"] = 2
    assert post(client, late).json()["alerts"][0]["outcome"] == "stale"
    # a resolution older than the stored one
    older = fixture("resolved")
    older["alerts"][0]["endsAt"] = "2025-12-09T20:00:00Z"
    assert post(client, older).json()["alerts"][0]["outcome"] == "stale"
    # the same resolution again, re-rendered by Grafana (not byte-identical)
    again = fixture("resolved")
    again["title"] = "[RESOLVED] re-sent"
    assert post(client, again).json()["alerts"][0]["outcome"] == "duplicate"
    [after] = external_rows(running)
    assert (after["status"], after["reason"]) == ("resolved", row["reason"])
    assert incident(running, row["alert_id"])["version"] == version


def test_a_new_episode_after_resolving_opens_a_new_incident(
        running: RunningBot, client: httpx.Client) -> None:
    post(client, fixture("firing"))
    post(client, fixture("resolved"))
    first_incident = external_rows(running)[0]["alert_id"]
    refire = fixture("firing")
    refire["alerts"][0]["startsAt"] = "2025-12-10T08:00:00Z"
    answer = post(client, refire).json()["alerts"][0]
    assert answer["outcome"] == "refired"
    assert answer["incident"] != first_incident
    [row] = external_rows(running)
    assert (row["status"], row["alert_id"], row["ends_at"]) == ("firing", answer["incident"], None)
    assert incident(running, answer["incident"])["state"] == "open"


def test_a_changed_reason_updates_the_same_incident(
        running: RunningBot, client: httpx.Client) -> None:
    post(client, fixture("firing"))
    [row] = external_rows(running)
    version = incident(running, row["alert_id"])["version"]
    more = fixture("firing")
    more["alerts"][0]["values"]["Number_of_Jobs_Failing"] = 3
    assert post(client, more).json()["alerts"][0]["outcome"] == "updated"
    [after] = external_rows(running)
    assert after["reason"] == "Failure_Threshold=1, Number_of_Jobs_Failing=3"
    assert after["alert_id"] == row["alert_id"]
    assert incident(running, row["alert_id"])["version"] > version
    assert event_kinds(running, row["alert_id"]) == ["grafana_firing"]


def open_streak_alert(running: RunningBot) -> int:
    """Three failing inductor commits through the real ingest: the bot's own alert opens."""
    ingestor = running.bot.ingestor
    commits = [Commit(sha_for(i, "g"), f"change {i}", time=BASE_TIME + timedelta(minutes=i))
               for i in range(4)]
    ingestor.commits(REPO, "main", commits)
    for i, commit in enumerate(commits):
        ingestor.result(JobResult(
            repo=REPO, sha=commit.sha, workflow="inductor", job_name="test (timm, 1, 1, g5)",
            job_id=100 + i, status="completed", branch="main",
            conclusion="success" if i == 0 else "failure",
            completed_at=BASE_TIME + timedelta(hours=1, minutes=i)))
    [alert_id] = [r[0] for r in running.bot.store.db.execute(
        "SELECT id FROM alerts WHERE kind = 'streak' AND state = 'open'")]
    return alert_id


def test_grafana_alert_attaches_to_the_open_streak_alert_of_its_team(
        running: RunningBot, client: httpx.Client) -> None:
    streak_id = open_streak_alert(running)
    answer = post(client, fixture("firing")).json()["alerts"][0]
    assert (answer["outcome"], answer["incident"]) == ("created", streak_id)
    assert running.bot.store.db.execute("SELECT count(*) FROM alerts").fetchone()[0] == 1
    assert event_kinds(running, streak_id)[-1] == "grafana_firing"
    post(client, fixture("resolved"))
    assert event_kinds(running, streak_id)[-1] == "grafana_resolved"
    assert incident(running, streak_id)["state"] == "open"  # only a green commit resolves it


def test_another_team_stands_alone(running: RunningBot, client: httpx.Client) -> None:
    streak_id = open_streak_alert(running)
    other = copy.deepcopy(fixture("firing"))
    other["alerts"][0]["annotations"]["Teams"] = "rocm"
    other["alerts"][0]["fingerprint"] = "ffff"
    answer = post(client, other).json()["alerts"][0]
    assert answer["incident"] != streak_id
    parent = incident(running, answer["incident"])
    assert (parent["kind"], parent["team"]) == ("grafana", "rocm")


def test_malformed_notifications_get_400(running: RunningBot, client: httpx.Client) -> None:
    assert post(client, None, raw=b"{not json").status_code == 400
    no_alerts = fixture("firing")
    del no_alerts["alerts"]
    assert post(client, no_alerts).status_code == 400
    bad_status = fixture("firing")
    bad_status["alerts"][0]["status"] = "pending"
    answer = post(client, bad_status)
    assert answer.status_code == 400
    assert "alerts[0].status" in answer.json()["error"]
    assert external_rows(running) == []
    assert running.bot.store.db.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0


def test_without_token_or_secret_the_endpoint_refuses(tmp_path: Path) -> None:
    with running_bot(tmp_path, grafana_webhook_token=None) as running, \
            running.client() as client:
        answer = post(client, fixture("firing"))
        assert answer.status_code == 503
        assert "GRAFANA_WEBHOOK_TOKEN" in answer.json()["error"]
        health = client.get("/healthz")
        assert health.status_code == 200
        assert "GRAFANA_WEBHOOK_SECRET" in health.json()["config"]["grafana_webhook"]
