"""``POST /github/webhook`` over real HTTP: signatures, redelivery, order, fixtures, errors."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from bot.domain.route import Route
from bot.store.details import AlertDetail, alert_detail, alert_ids
from bot.web.signatures import sign_github
from tests.support.fixtures import fixture_json
from tests.support.server import GITHUB_SECRET, Clock, RunningBot, running_bot
from tests.support.trunk import BASE_TIME, REPO, Trunk, sharded

JOBS = sharded("inductor", "inductor_timm", 2)
HELLO = "Codertocat/Hello-World"


def fixture(name: str) -> dict[str, Any]:
    return fixture_json("github", f"{name}.payload.json")


def post(client: httpx.Client, event: str, payload: Any, *, delivery: str | None = None,
         secret: str | None = GITHUB_SECRET, raw: bytes | None = None) -> httpx.Response:
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
               "Content-Type": "application/json"}
    if secret is not None:
        headers["X-Hub-Signature-256"] = sign_github(secret, body)
    return client.post("/github/webhook", content=body, headers=headers)


def counts(running: RunningBot) -> dict[str, int]:
    db = running.bot.store.db
    return {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("deliveries", "commits", "job_results", "cells", "alerts",
                          "alert_events")}


def alerts(running: RunningBot) -> list[AlertDetail]:
    db = running.bot.store.db
    return [d for i in alert_ids(db) if (d := alert_detail(db, i)) is not None]


def trunk_order(running: RunningBot, repo: str = REPO, branch: str = "main") -> list[str]:
    return [r[0] for r in running.bot.store.db.execute(
        "SELECT sha FROM commits WHERE repo = ? AND branch = ? ORDER BY position",
        [repo, branch])]


@pytest.fixture
def running(tmp_path: Path) -> Iterator[RunningBot]:
    clock = Clock(BASE_TIME + timedelta(hours=6))
    routes = (Route(), Route(name="hello", repo=HELLO, branch="main", workflows="^CodeQL$",
                             team="hello-team"))
    with running_bot(tmp_path, clock=clock, routes=routes) as bot:
        yield bot


@pytest.fixture
def client(running: RunningBot) -> Iterator[httpx.Client]:
    with running.client() as c:
        yield c


def broken_trunk() -> Trunk:
    """Five commits; the timm job fails from commit 2 on (a streak of 3)."""
    trunk = Trunk.linear(5, JOBS, salt="web")
    for i in range(2, 5):
        trunk.set(i, JOBS[0], "failure", line="RuntimeError: boom")
    trunk.fill("success")
    return trunk


def test_unsigned_and_forged_requests_get_401_and_store_nothing(
        running: RunningBot, client: httpx.Client) -> None:
    push = broken_trunk().push_delivery(0, 1)["payload"]
    assert post(client, "push", push, secret=None).status_code == 401
    forged = post(client, "push", push, secret="not-the-secret")
    assert forged.status_code == 401
    assert forged.json()["ok"] is False
    body = json.dumps(push).encode()
    tampered = client.post("/github/webhook", content=body + b" ", headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": "d1",
        "X-Hub-Signature-256": sign_github(GITHUB_SECRET, body)})
    assert tampered.status_code == 401
    assert counts(running)["deliveries"] == 0
    assert counts(running)["commits"] == 0
    health = client.get("/healthz").json()
    assert "X-Hub-Signature-256" in health["sources"]["github-webhook"]["error"]


def test_ping_answers_200(client: httpx.Client) -> None:
    answer = post(client, "ping", {"zen": "Keep it logically awesome.", "hook_id": 1})
    assert answer.status_code == 200
    assert answer.json() == {"ok": True, "pong": True}


def test_form_encoded_deliveries_are_read(running: RunningBot, client: httpx.Client) -> None:
    push = broken_trunk().push_delivery(0, 1)["payload"]
    body = urlencode({"payload": json.dumps(push)}).encode()
    answer = client.post("/github/webhook", content=body, headers={
        "X-GitHub-Event": "push", "X-GitHub-Delivery": "form-1",
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Hub-Signature-256": sign_github(GITHUB_SECRET, body)})
    assert answer.status_code == 200
    assert answer.json()["commits_placed"] == 2
    empty = b"other=1"
    refused = client.post("/github/webhook", content=empty, headers={
        "X-GitHub-Event": "push", "Content-Type": "application/x-www-form-urlencoded",
        "X-Hub-Signature-256": sign_github(GITHUB_SECRET, empty)})
    assert refused.status_code == 400


def test_push_records_trunk_order_and_redelivery_changes_nothing(
        running: RunningBot, client: httpx.Client) -> None:
    trunk = broken_trunk()
    first = post(client, "push", trunk.push_delivery(0, 2)["payload"], delivery="push-1")
    assert first.status_code == 200
    assert first.json()["commits_placed"] == 3
    second = post(client, "push", trunk.push_delivery(3, 4)["payload"], delivery="push-2")
    assert second.json()["commits_placed"] == 2
    assert trunk_order(running) == trunk.shas
    before = counts(running)
    again = post(client, "push", trunk.push_delivery(3, 4)["payload"], delivery="push-2")
    assert again.status_code == 200
    assert again.json() == {"ok": True, "duplicate": True}
    assert counts(running) == before


def test_jobs_open_an_alert_and_a_redelivered_job_changes_nothing(
        running: RunningBot, client: httpx.Client) -> None:
    trunk = broken_trunk()
    answers = [post(client, d["event"], d["payload"]) for d in trunk.deliveries()]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    [alert] = alerts(running)
    assert alert.state == "open"
    assert alert.first_red is not None and alert.first_red.sha == trunk.shas[2]
    assert any(a.json().get("alerts") == [alert.id] for a in answers)
    job = trunk.job_deliveries(4, JOBS[0])[0]["payload"]
    post(client, "workflow_job", job, delivery="job-x")
    before = counts(running)
    version = alert.version
    assert post(client, "workflow_job", job, delivery="job-x").json()["duplicate"] is True
    assert counts(running) == before
    assert alerts(running)[0].version == version


def test_an_old_streak_opens_nothing_and_healthz_says_why(tmp_path: Path, caplog: Any) -> None:
    """Two-day-old test data: no alert, one log line, and a notice that keeps /healthz 200."""
    trunk = broken_trunk()
    clock = Clock(BASE_TIME + timedelta(days=2))
    caplog.set_level(logging.INFO, logger="bot.health")
    with running_bot(tmp_path, clock=clock) as running, running.client() as client:
        for d in trunk.deliveries() + trunk.deliveries():  # the redeliveries say it once
            assert post(client, d["event"], d["payload"]).status_code == 200
        assert alerts(running) == []
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True
        notice = health.json()["notices"]["too_old"]
        key = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"
        assert notice.startswith(f"{key} (route inductor): 3 failing commits in a row")
        assert "older than max_age 1d: no alert" in notice
        logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("no alert")]
        assert logged == [f"no alert: {notice}"]


def test_shuffled_deliveries_give_the_same_alert_as_ordered_ones(tmp_path: Path) -> None:
    """Jobs arriving before their push wait, and are placed once the push lands."""
    trunk = broken_trunk()
    outcomes = []
    for seed in (None, 7):
        clock = Clock(BASE_TIME + timedelta(hours=6))
        with running_bot(tmp_path / str(seed), clock=clock) as running, \
                running.client() as client:
            waited = False
            for d in trunk.deliveries(shuffle_seed=seed):
                answer = post(client, d["event"], d["payload"])
                assert answer.status_code == 200, answer.text
                waited |= bool(answer.json().get("waiting_for_order"))
            [alert] = alerts(running)
            outcomes.append((waited, trunk_order(running), alert.state, alert.first_red,
                             alert.last_green, [(j.key, j.streak) for j in alert.jobs]))
    (ordered_waited, *ordered), (shuffled_waited, *shuffled) = outcomes
    assert not ordered_waited and shuffled_waited
    assert ordered[0] == trunk.shas
    assert shuffled == ordered


def test_out_of_order_pushes_keep_trunk_order(running: RunningBot, client: httpx.Client) -> None:
    trunk = Trunk.linear(6, JOBS, salt="pushes")
    post(client, "push", trunk.push_delivery(0, 1)["payload"])
    post(client, "push", trunk.push_delivery(4, 5)["payload"])  # before = shas[3], unknown
    post(client, "push", trunk.push_delivery(2, 3)["payload"])  # late: fills the gap
    assert trunk_order(running) == trunk.shas


def test_forced_push_is_logged_and_placed_after_before(
        running: RunningBot, client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    trunk = Trunk.linear(4, JOBS, salt="forced")
    post(client, "push", trunk.push_delivery(0, 2)["payload"])
    forced = trunk.push_delivery(3, 3, before=trunk.shas[1])["payload"]
    forced["forced"] = True
    with caplog.at_level(logging.WARNING, logger="bot.web.github"):
        assert post(client, "push", forced).status_code == 200
    assert any("forced push" in r.getMessage() and trunk.shas[1][:12] in r.getMessage()
               for r in caplog.records)
    order = trunk_order(running)
    assert order.index(trunk.shas[1]) < order.index(trunk.shas[3]) < order.index(trunk.shas[2])
    assert len(order) == 4  # the dropped commit stays in history


def test_github_fixtures(running: RunningBot, client: httpx.Client) -> None:
    # a tag deletion: not a branch, nothing to place
    tag = post(client, "push", fixture("push"))
    assert tag.status_code == 202 and tag.json()["ignored"] is True
    # a push creating an unwatched branch (master): ignored
    assert post(client, "push", fixture("push.with-new-branch")).status_code == 202
    # workflow_run is not an event the bot reads
    assert post(client, "workflow_run", fixture("workflow_run.completed")).status_code == 202
    assert counts(running)["deliveries"] == 0
    # workflow_job for a watched workflow; statuses arrive out of order
    queued = fixture("workflow_job.queued")
    completed = fixture("workflow_job.completed.failure.with-organization")
    answer = post(client, "workflow_job", completed)
    assert answer.status_code == 200
    assert answer.json()["results_stored"] == 1
    assert answer.json()["waiting_for_order"] is True  # its push was never seen
    post(client, "workflow_job", fixture("workflow_job.in_progress"))
    post(client, "workflow_job", queued)
    rows = {r[0]: r[1:] for r in running.bot.store.db.execute(
        "SELECT job_id, status, conclusion FROM job_results WHERE repo = ?", [HELLO])}
    # GitHub's sample payloads share one job id: the later-arriving earlier statuses
    # must not overwrite the completed failure
    assert queued["workflow_job"]["id"] == completed["workflow_job"]["id"]
    assert rows == {completed["workflow_job"]["id"]: ("completed", "failure")}
    assert counts(running)["deliveries"] == 3
    # once the commit is placed, the waiting results become cells
    sha = completed["workflow_job"]["head_sha"]
    push = {"ref": "refs/heads/main", "before": "0" * 40, "after": sha, "forced": False,
            "created": False, "deleted": False,
            "commits": [{"id": sha, "message": "Fix (#3)", "timestamp": "2019-05-15T15:20:30Z",
                         "author": {"name": "Codertocat"}}],
            "repository": {"full_name": HELLO}}
    assert post(client, "push", push).json()["commits_placed"] == 1
    cells = running.bot.store.db.execute(
        "SELECT job_key, status FROM cells WHERE repo = ? AND sha = ?", [HELLO, sha]).fetchall()
    assert ("CodeQL / linters", "failure") in cells
    # the waiting job from an unwatched repository was not stored at all
    assert post(client, "workflow_job", fixture("workflow_job.waiting")).status_code == 202


def test_malformed_bodies_get_400_and_store_nothing(
        running: RunningBot, client: httpx.Client) -> None:
    assert post(client, "push", None, raw=b'{"ref": ').status_code == 400
    assert post(client, "push", None, raw=b"\xff\xfe").status_code == 400
    missing_ref = broken_trunk().push_delivery(0, 0)["payload"]
    del missing_ref["ref"]
    answer = post(client, "push", missing_ref)
    assert answer.status_code == 400
    assert "ref" in answer.json()["error"]
    bad_job = fixture("workflow_job.queued")
    bad_job["workflow_job"]["id"] = "not-a-number"
    assert post(client, "workflow_job", bad_job).status_code == 400
    no_event = client.post("/github/webhook", content=b"{}", headers={
        "X-Hub-Signature-256": sign_github(GITHUB_SECRET, b"{}")})
    assert no_event.status_code == 400
    assert counts(running) == {k: 0 for k in counts(running)}


def test_without_a_secret_the_endpoint_refuses_and_healthz_says_why(tmp_path: Path) -> None:
    with running_bot(tmp_path, github_webhook_secret=None) as running, \
            running.client() as client:
        answer = post(client, "ping", {"zen": "x"})
        assert answer.status_code == 503
        assert "GITHUB_WEBHOOK_SECRET" in answer.json()["error"]
        health = client.get("/healthz")
        assert health.status_code == 200  # a HUD-only bot is not unhealthy
        report = health.json()
        assert "GITHUB_WEBHOOK_SECRET" in report["config"]["github_webhook"]
        assert "GITHUB_WEBHOOK_SECRET" in report["sources"]["github-webhook"]["note"]
