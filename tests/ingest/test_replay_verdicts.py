"""Issue #11 through ``python -m bot replay``: verdicts that agree with HUD whatever the order.

Each scenario is one incident on one job; it is replayed in the order things happened,
in other arrival orders, and (where it matters) as one HUD page, and every replay must
tell the same story: the same alerts, ranges and resolutions.
"""

from __future__ import annotations

import io
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.support.replaying import alerts_of, essence, replay, write
from tests.support.trunk import Trunk, ndjson, sharded

(JOB,) = sharded("inductor", "inductor_timm", 1)
KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"


def incident(n: int, failing: range | tuple[int, ...], salt: str) -> Trunk:
    """One job, green except on ``failing``."""
    trunk = Trunk.linear(n, [JOB], salt=salt)
    for i in range(n):
        trunk.set(i, JOB, "failure" if i in failing else "success")
    return trunk


def replayed(tmp_path: Path, name: str, deliveries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    path = tmp_path / f"{name}.ndjson"
    path.write_text(ndjson(deliveries))
    return alerts_of(replay(path))


def in_trunk_order(trunk: Trunk, *extra: dict[str, Any]) -> list[dict[str, Any]]:
    return trunk.deliveries() + list(extra)


# --- one shard, several runs: HUD's rule ------------------------------------------------------


def test_a_restart_that_fails_after_the_push_run_passed_is_a_flaky_pass(tmp_path: Path) -> None:
    """Green at 0, red at 1-3, green at 4; then a restart of 4 on trunk/{sha} fails.

    The last run used to decide the cell: the head turned red, the alert resolved and
    opened again as a second alert. HUD shows that cell as a flaky pass."""
    trunk = incident(6, range(1, 4), "restart")
    restart = trunk.run_delivery(4, JOB, "failure")
    (alert,) = replayed(tmp_path, "restart", in_trunk_order(trunk, restart))
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[4]
    (job,) = alert["jobs"]
    assert (job["streak"], job["first_failing_sha"], job["newest_failing_sha"]) == (
        3, trunk.shas[1], trunk.shas[3])
    assert job["flaky"] is True  # the failed restart is evidence of flakiness, linked
    assert job["flaky_sha"] == trunk.shas[4]
    assert job["flaky_url"] == restart["payload"]["workflow_job"]["html_url"]


def test_a_restart_that_arrives_before_its_commit_is_placed_tells_the_same_story(
        tmp_path: Path) -> None:
    """The restart ran on trunk/{sha}: it is kept until its commit is placed, then counted."""
    trunk = incident(6, range(1, 4), "restart")
    restart = trunk.run_delivery(4, JOB, "failure")
    in_order = replayed(tmp_path, "in-order", in_trunk_order(trunk, restart))
    early = replayed(tmp_path, "early", [restart, *trunk.deliveries()])
    assert essence(early) == essence(in_order)


def test_a_newer_run_that_passed_wins_over_an_older_run_with_more_attempts(
        tmp_path: Path) -> None:
    """Run A failed twice (attempts 1 and 2); a restart (run B, attempt 1) passed.

    Sorting by (attempt, job id) put attempt 2 last and kept the failure."""
    trunk = incident(6, range(1, 4), "attempts")
    trunk.set(4, JOB, "failure", "failure")  # run A: attempts 1 and 2
    restart = trunk.run_delivery(4, JOB, "success")  # run B: attempt 1, newer job id
    (alert,) = replayed(tmp_path, "attempts", in_trunk_order(trunk, restart))
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[4]


def test_a_rerun_still_running_hides_no_finished_result(tmp_path: Path) -> None:
    """A rerun started at the green head must not reopen the alert; a rerun of the
    last green commit must not widen the range."""
    trunk = incident(6, range(1, 4), "running")
    at_head = trunk.run_delivery(5, JOB, "in_progress", attempt=2, run_id=5005)
    at_green = trunk.run_delivery(0, JOB, "in_progress", attempt=2, run_id=5000)
    plain = replayed(tmp_path, "plain", in_trunk_order(trunk))
    (alert,) = replayed(tmp_path, "running", in_trunk_order(trunk, at_head, at_green))
    assert essence([alert]) == essence(plain)
    assert alert["state"] == "resolved" and alert["last_green_sha"] == trunk.shas[0]
    assert alert["suspects"] == [trunk.shas[1]]


def test_every_arrival_order_of_a_restarted_commit_agrees(tmp_path: Path) -> None:
    """All orders of the three runs at commit 4 (push run, failed restart, rerun attempt)."""
    trunk = incident(6, range(1, 4), "orders")
    runs = [trunk.run_delivery(4, JOB, "failure"),
            trunk.run_delivery(4, JOB, "in_progress", attempt=2, run_id=5004),
            *trunk.job_deliveries(4, JOB)]
    del trunk.runs[(4, JOB)]
    stories = set()
    for order in itertools.permutations(runs):
        name = "-".join(str(d["payload"]["workflow_job"]["id"]) for d in order)
        stories.add(repr(essence(replayed(tmp_path, name, [*trunk.deliveries(), *order]))))
    assert len(stories) == 1


# --- HUD's own flaky markers ------------------------------------------------------------------


def test_hud_failed_previous_run_marks_the_pass_flaky(tmp_path: Path) -> None:
    trunk = incident(6, range(1, 4), "hudmark")
    page = trunk.hud_page()
    cell = page["shaGrid"][1]["jobs"][0]  # commit 4, newest first
    assert cell["conclusion"] == "success"
    cell["failedPreviousRun"] = True
    (alert,) = alerts_of(replay(write(tmp_path / "page.json", page)))
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[4]
    assert alert["jobs"][0]["flaky"] is True
    del cell["failedPreviousRun"]
    (plain,) = alerts_of(replay(write(tmp_path / "plain.json", page)))
    assert plain["jobs"][0]["flaky"] is False


def test_hud_cell_runs_count_like_webhook_runs(tmp_path: Path) -> None:
    """A HUD cell listing its runs gives the same story as the webhooks of those runs."""
    trunk = incident(6, range(1, 4), "cellruns")
    restart = trunk.run_delivery(4, JOB, "failure")
    page = trunk.hud_page()
    cell = page["shaGrid"][1]["jobs"][0]
    failed = restart["payload"]["workflow_job"]
    cell["failedPreviousRun"] = True
    cell["cellRuns"] = [
        {"id": str(cell["id"]), "conclusion": "success", "htmlUrl": cell["htmlUrl"]},
        {"id": str(failed["id"]), "conclusion": "failure", "runOrigin": "autorevert",
         "htmlUrl": failed["html_url"]},
    ]
    from_hud = alerts_of(replay(write(tmp_path / "page.json", page)))
    from_webhooks = replayed(tmp_path, "hooks", in_trunk_order(trunk, restart))
    assert essence(from_hud) == essence(from_webhooks)


# --- trunk order from the push chain -----------------------------------------------------


def test_pushes_redelivered_newest_first_give_the_true_trunk_order(tmp_path: Path) -> None:
    """Pushes of 10, 11 and 12 arrive newest first: 11 used to stay at the head for good,
    so the pass at 12 never resolved the alert."""
    trunk = incident(13, range(6, 12), "pushes")
    pushes = {i: trunk.push_delivery(i, i) for i in range(13)}
    results = {i: trunk.job_deliveries(i, JOB) for i in range(13)}
    deliveries = [d for i in range(10) for d in (pushes[i], *results[i])]
    deliveries += [pushes[12], pushes[11], pushes[10], *results[10], *results[11], *results[12]]
    (alert,) = replayed(tmp_path, "newest-first", deliveries)
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[12]
    assert alert["suspects"] == [trunk.shas[6]]
    assert alert["jobs"][0]["newest_failing_sha"] == trunk.shas[11]
    assert essence([alert]) == essence(replayed(tmp_path, "in-order", trunk.deliveries()))


def test_a_result_from_another_ref_before_its_commit_is_placed_counts(tmp_path: Path) -> None:
    """Commit 4 has only a restart on trunk/{sha} (it passed), delivered before 4's push."""
    trunk = incident(6, range(1, 4), "ref")
    del trunk.runs[(4, JOB)]
    restart = trunk.run_delivery(4, JOB, "success")
    (alert,) = replayed(tmp_path, "ref", [restart, *trunk.deliveries()])
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[4]


def test_a_pull_request_run_is_not_kept(tmp_path: Path) -> None:
    """A run on a PR branch at a sha that never lands on trunk is ignored, not kept."""
    trunk = incident(6, range(1, 4), "pr")
    pr_run = trunk.run_delivery(4, JOB, "failure", ref="gh/dev/123/head")
    pr_run["payload"]["workflow_job"]["head_sha"] = "f" * 40
    assert essence(replayed(tmp_path, "pr", [pr_run, *trunk.deliveries()])) == essence(
        replayed(tmp_path, "plain", trunk.deliveries()))


# --- the same facts, whatever their order or batching ------------------------------------


def test_recovery_then_failure_resolves_at_the_recovery_in_any_order(tmp_path: Path) -> None:
    """Green at 0, red at 1-3, green at 4, red at 5. The alert resolves at 4 and the
    failure at 5 starts a streak of its own, whether 5 arrives before 4, after it, or
    both come in one HUD page. It used to stay open with range (4, 5]."""
    trunk = incident(6, (1, 2, 3, 5), "recover")
    in_order = replayed(tmp_path, "in-order", trunk.deliveries())
    (alert,) = in_order
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[4]
    assert (alert["last_green_sha"], alert["suspects"]) == (trunk.shas[0], [trunk.shas[1]])
    (job,) = alert["jobs"]
    assert (job["streak"], job["newest_failing_sha"], job["recovered"]) == (3, trunk.shas[3],
                                                                           True)
    pushes = [trunk.push_delivery(i, i) for i in range(6)]
    five_first = [*pushes, *(d for i in (0, 1, 2, 3, 5, 4) for d in trunk.job_deliveries(i, JOB))]
    assert essence(replayed(tmp_path, "five-first", five_first)) == essence(in_order)
    page = alerts_of(replay(write(tmp_path / "page.json", trunk.hud_page())))
    assert essence(page) == essence(in_order)


def test_an_incident_tells_the_same_story_in_every_order_and_as_one_page(
        tmp_path: Path) -> None:
    """Two jobs broken by one change, a flaky shard elsewhere, a periodic job, noise:
    delivered in order, shuffled (pushes too), newest push first, or as one HUD page."""
    hf = sharded("inductor", "inductor_huggingface", 3)
    names = [JOB, *hf]
    trunk = Trunk.linear(14, names, salt="story")
    for i in range(14):
        trunk.set(i, JOB, "failure" if 5 <= i < 10 else "success")
        trunk.set(i, hf[0], "failure" if 5 <= i < 11 else "success")
        trunk.set(i, hf[1], "failure", "success") if i == 3 else trunk.set(i, hf[1], "success")
        trunk.set(i, hf[2], "success")
    in_order = replayed(tmp_path, "in-order", trunk.deliveries())
    (alert,) = in_order
    assert alert["state"] == "resolved" and alert["resolved_sha"] == trunk.shas[11]
    assert alert["suspects"] == [trunk.shas[5]] and len(alert["jobs"]) == 2
    deliveries = trunk.deliveries()
    for seed in range(3):
        shuffled = list(deliveries)
        random.Random(seed).shuffle(shuffled)
        assert essence(replayed(tmp_path, f"shuffled-{seed}", shuffled)) == essence(in_order)
    newest_first = sorted(deliveries, key=lambda d: d["event"] != "push")
    newest_first[:14] = newest_first[:14][::-1]
    assert essence(replayed(tmp_path, "newest-first", newest_first)) == essence(in_order)
    page = alerts_of(replay(write(tmp_path / "page.json", trunk.hud_page())))
    assert essence(page) == essence(in_order)


# --- batched replay and the live path --------------------------------------------------------


def noisy_history(seed: int) -> Trunk:
    """Three sharded jobs over 40 commits: breakages that recover, flaky reruns, restarts."""
    rng = random.Random(seed)
    names = [*sharded("inductor", "inductor_timm", 2), *sharded("inductor", "inductor_hf", 3),
             *sharded("inductor-periodic", "dynamo_eager", 2)]
    trunk = Trunk.linear(40, names, salt=f"noisy{seed}")
    broken = {name: set() for name in names}
    for _ in range(4):
        start, victims = rng.randrange(35), rng.sample(names, 2)
        for name in victims:
            broken[name].update(range(start, start + rng.randint(2, 7)))
    for i in range(40):
        for name in names:
            if "periodic" in name and i % 3:
                continue
            if i in broken[name]:
                trunk.set(i, name, *(["failure"] if rng.random() < 0.8 else ["failure", "success"]))
            else:
                trunk.set(i, name, "success" if rng.random() < 0.95 else "failure")
    return trunk


def in_process(tmp_path: Path, name: str, source: list[dict[str, Any]] | Path,
               batch: tuple[int, int], routes: tuple[Any, ...] | None = None,
               ) -> list[dict[str, Any]]:
    """Replay deliveries (or an NDJSON file) in this process with the given batch sizes."""
    from bot.domain.route import Route
    from bot.ingest.replay import alert_json
    from bot.ingest.replay import replay as run_replay
    from bot.store.db import Store

    if isinstance(source, Path):
        path = source
    else:
        path = tmp_path / f"{name}.ndjson"
        path.write_text(ndjson(source))
    store = Store(tmp_path / f"{name}.db")
    store.migrate()
    try:
        details, problems = run_replay(store, routes or (Route(),), [path], io.StringIO(), batch)
    finally:
        store.close()
    assert not problems
    return [alert_json(d) for d in details]


BATCHES = ((7, 13), (100, 250), (4_000, 5_000))  # small, middling, replay's own


def test_the_example_incident_batched_reports_what_the_live_path_does(tmp_path: Path) -> None:
    """examples/inductor-incident one delivery at a time (the live path) and in batches."""
    from bot.config import load_routes

    example = Path(__file__).resolve().parents[2] / "examples" / "inductor-incident"
    routes = load_routes(str(example / "routes.toml"))
    incident = example / "incident.ndjson"
    live = in_process(tmp_path, "live", incident, (1, 1), routes)
    assert live, "the incident opens alerts"
    for least, most in BATCHES:
        batched = in_process(tmp_path, f"b{most}", incident, (least, most), routes)
        assert essence(batched) == essence(live)
        assert [opened_late(a, b) for a, b in zip(batched, live, strict=True)] \
            == [False] * len(live), "a batch is judged within BATCH_SPAN of a live bot"


def opened_late(batched: dict[str, Any], live: dict[str, Any]) -> bool:
    from datetime import datetime

    from bot.ingest.replay import BATCH_SPAN

    late = datetime.fromisoformat(batched["opened_at"]) - datetime.fromisoformat(
        live["opened_at"])
    return not (late.total_seconds() >= 0 and late <= BATCH_SPAN)


def test_a_batch_reaching_far_past_an_incident_still_alerts_on_it(tmp_path: Path) -> None:
    """The incident, then one unrelated push 34 hours later, all in one file: a batch
    judged at the push's time found the failures older than ``max_age`` and opened
    nothing, where a live bot had opened the alert at 10:50."""
    from bot.config import load_routes

    example = Path(__file__).resolve().parents[2] / "examples" / "inductor-incident"
    routes = load_routes(str(example / "routes.toml"))
    lines = [json.loads(x) for x in (example / "incident.ndjson").read_text().splitlines()]
    opened = [i for i, d in enumerate(lines) if d["event"] == "workflow_job"][:30][-1]
    head = [d for d in lines[:opened + 1] if d["event"] == "push"][-1]["payload"]["after"]
    later = {"event": "push", "payload": {
        "ref": "refs/heads/main", "before": head, "after": "f" * 40, "deleted": False,
        "repository": {"full_name": "pytorch/pytorch"},
        "commits": [{"id": "f" * 40, "timestamp": "2025-03-13T20:00:00Z",
                     "message": "unrelated change", "author": {"name": "a"},
                     "added": [], "removed": [], "modified": ["README.md"]}]}}
    source = lines[:opened + 1] + [later]
    live = in_process(tmp_path, "live", source, (1, 1), routes)
    assert [a["state"] for a in live] == ["open"]
    batched = in_process(tmp_path, "one-batch", source, (4_000, 5_000), routes)
    assert essence(batched) == essence(live)
    assert not opened_late(batched[0], live[0])


@pytest.mark.parametrize("seed", range(8))
def test_batched_replay_reports_what_the_live_path_does(tmp_path: Path, seed: int) -> None:
    """One delivery at a time (the live path), small batches, and the default batches."""
    trunk = noisy_history(seed)
    deliveries = trunk.deliveries(shuffle_seed=seed, push_batch=2)
    live = in_process(tmp_path, "live", deliveries, (1, 1))
    assert live, "the history has breakages"
    for least, most in BATCHES:
        assert essence(in_process(tmp_path, f"b{most}", deliveries, (least, most))) \
            == essence(live)
