"""``python -m bot replay`` end to end, as a subprocess: HUD pages, NDJSON deliveries, fixtures."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.fixtures import fixture_files, fixture_json
from tests.support.replaying import alerts_of, essence, replay, write
from tests.support.trunk import Trunk, ndjson, sharded

TIMM = sharded("inductor", "inductor_timm", 2)
HF = sharded("inductor", "inductor_huggingface", 3)
PERIODIC = ["inductor-periodic / cuda12.8-py3.10-gcc9-sm86 / test (dynamo_eager)"]
UNSTABLE = ["inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_x, 1, 1, linux.g5, unstable)"]
TIMM_KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"
HF_KEY = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"


def broken_trunk(n: int = 12, broken_at: int = 6, fixed_at: int | None = None) -> Trunk:
    """timm shard 2 fails from ``broken_at`` (until ``fixed_at``); hf is flaky once; noise."""
    trunk = Trunk.linear(n, TIMM + HF + PERIODIC + UNSTABLE, salt="replay")
    for i in range(n):
        if broken_at <= i and (fixed_at is None or i < fixed_at):
            trunk.set(i, TIMM[1], "failure", line="FAILED test_timm.py::test_resnet - boom")
        if i == 3:
            trunk.set(i, HF[0], "failure", "success")  # flaky: failed, passed on rerun
        if i % 4:
            trunk.runs[(i, PERIODIC[0])] = []  # the periodic job runs on every 4th commit
        trunk.set(i, UNSTABLE[0], "failure")  # excluded by name: never alerts
    trunk.fill()
    for i in range(n):
        if i % 4:
            del trunk.runs[(i, PERIODIC[0])]
    return trunk


# --- HUD pages ---------------------------------------------------------------------------------


def test_hud_page_json_shape_and_content(tmp_path: Path) -> None:
    trunk = broken_trunk()
    (alert,) = alerts_of(replay(write(tmp_path / "page.json", trunk.hud_page())))
    assert alert["state"] == "open"
    assert (alert["repo"], alert["branch"]) == ("pytorch/pytorch", "main")
    assert (alert["team"], alert["priority"]) == ("broken-inductor", "P2")
    assert isinstance(alert["id"], int)
    assert alert["first_failing_sha"] == trunk.shas[6]
    assert alert["last_green_sha"] == trunk.shas[5]
    assert alert["suspects"] == [trunk.shas[6]]
    (job,) = alert["jobs"]
    assert job["key"] == TIMM_KEY and job["streak"] == 6 and job["recovered"] is False
    assert job["first_failing_sha"] == trunk.shas[6]
    assert job["newest_failing_sha"] == trunk.shas[11]


def test_a_page_listed_oldest_first_is_refused_and_the_run_fails(tmp_path: Path) -> None:
    page = broken_trunk().hud_page()
    page["shaGrid"].reverse()
    done = replay(write(tmp_path / "reversed.json", page), fmt="text")
    assert done.returncode == 1
    assert "reversed.json[0]: not used: shaGrid:" in done.stderr
    assert "oldest first" in done.stderr and "reverse shaGrid" in done.stderr
    assert done.stdout == "No alerts.\n"


def test_overlapping_hud_pages_merge(tmp_path: Path) -> None:
    trunk = broken_trunk(n=20, broken_at=14)
    whole = alerts_of(replay(write(tmp_path / "whole.json", trunk.hud_page())))
    # page 0 holds commits 19..10, page 1 holds 14..5: five commits on both
    newest = write(tmp_path / "p0.json", trunk.hud_page(newest=19, count=10))
    older = write(tmp_path / "p1.json", trunk.hud_page(newest=14, count=10))
    assert essence(alerts_of(replay(newest, older))) == essence(whole)
    assert essence(alerts_of(replay(older, newest))) == essence(whole)
    # a page given twice changes nothing
    assert essence(alerts_of(replay(newest, older, newest))) == essence(whole)
    (alert,) = whole
    assert alert["suspects"] == [trunk.shas[14]] and alert["last_green_sha"] == trunk.shas[13]


def test_older_page_without_overlap_is_placed_before(tmp_path: Path) -> None:
    trunk = broken_trunk(n=16, broken_at=6)
    newest = write(tmp_path / "p0.json", trunk.hud_page(newest=15, count=8))  # 15..8
    older = write(tmp_path / "p1.json", trunk.hud_page(newest=7, count=8))  # 7..0
    only_newest = alerts_of(replay(newest))
    (alert,) = only_newest
    assert alert["last_green_sha"] is None  # the range is open towards the past
    assert alert["suspects"][-1] == trunk.shas[8]
    (merged,) = alerts_of(replay(newest, older))
    assert merged["last_green_sha"] == trunk.shas[5]
    assert merged["suspects"] == [trunk.shas[6]]
    assert merged["jobs"][0]["streak"] == 10


def test_hud_snapshots_track_the_alert_until_resolved(tmp_path: Path) -> None:
    before = broken_trunk(n=10, broken_at=6)
    after = broken_trunk(n=12, broken_at=6, fixed_at=11)
    first = write(tmp_path / "t1.json", before.hud_page())
    second = write(tmp_path / "t2.json", after.hud_page())
    (alert,) = alerts_of(replay(first))
    assert alert["state"] == "open" and alert["jobs"][0]["streak"] == 4
    (alert,) = alerts_of(replay(first, second))
    assert alert["state"] == "resolved"
    (job,) = alert["jobs"]
    assert job["recovered"] is True and job["first_failing_sha"] == after.shas[6]
    assert alert["suspects"] == [after.shas[6]]


def test_hud_flaky_at_the_newest_failing_commit_resolves(tmp_path: Path) -> None:
    failing = broken_trunk(n=9, broken_at=6)
    rerun = broken_trunk(n=9, broken_at=6)
    rerun.set(8, TIMM[1], "failure", "success")  # HUD shows this cell as "flaky"
    assert rerun.hud_page()["shaGrid"][0]["jobs"][1]["conclusion"] == "flaky"
    (alert,) = alerts_of(replay(write(tmp_path / "a.json", failing.hud_page()),
                                write(tmp_path / "b.json", rerun.hud_page())))
    assert alert["state"] == "resolved"


def test_age_is_judged_against_the_newest_input(tmp_path: Path) -> None:
    """Failures on commits 1..4, then 100 commits (33 h) on which the job did not run."""
    trunk = Trunk.linear(105, TIMM, salt="age")
    trunk.set(0, TIMM[0], "success")
    trunk.set(0, TIMM[1], "success")
    for i in range(1, 5):
        trunk.set(i, TIMM[0], "failure")
    page = write(tmp_path / "page.json", trunk.hud_page())
    assert alerts_of(replay(page)) == []
    config = tmp_path / "week.toml"
    config.write_text('[defaults]\nmax_age = "7d"\n')
    (alert,) = alerts_of(replay(page, config=str(config)))
    assert alert["suspects"] == [trunk.shas[1]]


def test_directory_of_pages(tmp_path: Path) -> None:
    trunk = broken_trunk(n=20, broken_at=14)
    pages = tmp_path / "pages"
    pages.mkdir()
    write(pages / "0.json", trunk.hud_page(newest=19, count=10))
    write(pages / "1.json", trunk.hud_page(newest=9, count=10))
    (alert,) = alerts_of(replay(pages))
    assert alert["suspects"] == [trunk.shas[14]]


def test_text_format(tmp_path: Path) -> None:
    trunk = broken_trunk()
    done = replay(write(tmp_path / "page.json", trunk.hud_page()), fmt="text")
    assert done.returncode == 0, done.stderr
    assert "[P2] broken-inductor" in done.stdout and "OPEN" in done.stdout
    assert TIMM_KEY in done.stdout and "streak 6" in done.stdout
    assert f"suspect {trunk.shas[6][:10]}" in done.stdout
    assert "FAILED test_timm.py::test_resnet" in done.stdout


def test_no_alerts(tmp_path: Path) -> None:
    trunk = Trunk.linear(6, TIMM, salt="green")
    trunk.fill()
    page = write(tmp_path / "green.json", trunk.hud_page())
    assert alerts_of(replay(page)) == []
    done = replay(page, fmt="text")
    assert done.returncode == 0 and done.stdout == "No alerts.\n"


# --- GitHub deliveries as NDJSON ------------------------------------------------------------------


def test_ndjson_in_order_and_shuffled_agree(tmp_path: Path) -> None:
    trunk = broken_trunk(n=12, broken_at=6)
    in_order = tmp_path / "in_order.ndjson"
    in_order.write_text(ndjson(trunk.deliveries()))
    shuffled = tmp_path / "shuffled.ndjson"
    shuffled.write_text(ndjson(trunk.deliveries(shuffle_seed=7, push_batch=3)))
    expected = alerts_of(replay(in_order))
    (alert,) = expected
    assert alert["suspects"] == [trunk.shas[6]] and alert["last_green_sha"] == trunk.shas[5]
    assert [j["key"] for j in alert["jobs"]] == [TIMM_KEY]
    assert essence(alerts_of(replay(shuffled))) == essence(expected)


def test_ndjson_resolution_by_a_newer_pass(tmp_path: Path) -> None:
    trunk = broken_trunk(n=12, broken_at=5, fixed_at=9)
    path = tmp_path / "fixed.ndjson"
    path.write_text(ndjson(trunk.deliveries()))
    (alert,) = alerts_of(replay(path))
    assert alert["state"] == "resolved"
    assert alert["jobs"][0]["recovered"] is True
    assert alert["jobs"][0]["newest_failing_sha"] == trunk.shas[8]


def test_malformed_lines_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    trunk = broken_trunk(n=10, broken_at=6)
    lines = ndjson(trunk.deliveries()).splitlines()
    bad_payload = copy.deepcopy(trunk.job_deliveries(9, TIMM[1])[0])
    del bad_payload["payload"]["workflow_job"]["head_sha"]
    inserted = {
        2: "this is not json",
        5: json.dumps({"event": "push"}),
        9: json.dumps(bad_payload),
        12: json.dumps(["a", "list"]),
        13: '{"event": "workflow_job", "payload": ' + "[" * 100_000 + "]" * 100_000 + "}",
    }
    for number in sorted(inserted):
        lines.insert(number - 1, inserted[number])
    lines.insert(14, "")  # blank lines are not deliveries
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n")
    done = replay(path)
    reported = [line for line in done.stderr.splitlines() if ": skipped: " in line]
    assert [line.split(": skipped: ")[0] for line in reported] == [
        f"{path}:{n}" for n in sorted(inserted)]
    assert "head_sha" in reported[2]
    assert reported[4].endswith("skipped: JSON nested too deeply")
    assert "Traceback" not in done.stderr
    (alert,) = alerts_of(done)  # everything else still replayed
    assert alert["suspects"] == [trunk.shas[6]]


def test_db_is_kept_and_replaying_again_changes_nothing(tmp_path: Path) -> None:
    trunk = broken_trunk(n=10, broken_at=6)
    path = tmp_path / "d.ndjson"
    path.write_text(ndjson(trunk.deliveries()))
    db = tmp_path / "kept.db"
    first = alerts_of(replay(path, db=db))
    assert db.exists()
    again = alerts_of(replay(path, db=db))
    assert again == first


def test_invalid_config_fails_at_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[[routes]]\nthreshold = 0\n")
    done = replay(tmp_path / "none.ndjson", config=str(config))
    assert done.returncode == 2
    assert "routes[0].threshold" in done.stderr and "positive integer" in done.stderr


# --- the shared GitHub fixtures ------------------------------------------------------------------


def fixture(name: str) -> dict[str, Any]:
    return fixture_json("github", f"{name}.payload.json")


def fixture_deliveries() -> list[dict[str, Any]]:
    """Every shared fixture as a delivery, event named after its file."""
    return [{"event": path.name.split(".")[0], "payload": json.loads(path.read_text())}
            for path in fixture_files("github", "*.payload.json")]


HELLO_ROUTE = """
[[routes]]
name = "codeql"
repo = "Codertocat/Hello-World"
branch = "main"
workflows = "^CodeQL$"
exclude = ""
team = "hello-team"
priority = "P1"
max_age = "1d"
"""


def test_fixtures_are_ignored_by_the_default_route(tmp_path: Path) -> None:
    path = tmp_path / "fixtures.ndjson"
    path.write_text(ndjson(fixture_deliveries()))
    done = replay(path, fmt="text")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "No alerts.\n"
    assert ": skipped:" not in done.stderr  # well-formed, merely not watched


def test_fixtures_on_a_route_watching_their_repository(tmp_path: Path) -> None:
    """A trunk built from the real payloads: a push of four commits, CodeQL breaking."""
    push = fixture("push.with-new-branch")
    push["ref"] = "refs/heads/main"
    template = push["commits"][0]
    shas = [f"{i + 1:x}" * 40 for i in range(4)]
    push["commits"] = [
        {**copy.deepcopy(template), "id": sha, "message": f"Change {i} (#{100 + i})",
         "timestamp": f"2024-01-05T0{i}:00:00Z"}
        for i, sha in enumerate(shas)
    ]
    push["head_commit"] = push["commits"][-1]
    push["after"] = shas[-1]
    jobs = []
    for i, sha in enumerate(shas):
        payload = fixture("workflow_job.completed.success.with-organization" if i == 0
                          else "workflow_job.completed.failure.with-organization")
        # later than every fixture: replay judges age against the newest input's time
        payload["workflow_job"].update(id=1000 + i, head_sha=sha, run_id=2000 + i,
                                       started_at=f"2024-01-05T0{i}:10:00Z",
                                       completed_at=f"2024-01-05T0{i}:40:00Z")
        jobs.append({"event": "workflow_job", "payload": payload})
    config = tmp_path / "hello.toml"
    config.write_text(HELLO_ROUTE)
    path = tmp_path / "hello.ndjson"
    # results arrive before the push that places their commits, and other fixtures mix in
    path.write_text(ndjson(jobs[::-1] + fixture_deliveries() + [{"event": "push",
                                                                   "payload": push}]))
    (alert,) = alerts_of(replay(path, config=str(config)))
    assert (alert["repo"], alert["branch"]) == ("Codertocat/Hello-World", "main")
    assert (alert["team"], alert["priority"], alert["state"]) == ("hello-team", "P1", "open")
    assert alert["last_green_sha"] == shas[0] and alert["first_failing_sha"] == shas[1]
    assert alert["suspects"] == [shas[1]]
    (job,) = alert["jobs"]
    assert (job["key"], job["streak"], job["newest_failing_sha"]) == ("CodeQL / linters", 3,
                                                                      shas[3])


@pytest.mark.parametrize("other", ["workflow_run.completed", "workflow_run.requested"])
def test_other_events_are_ignored_not_reported(tmp_path: Path, other: str) -> None:
    path = tmp_path / "other.ndjson"
    path.write_text(ndjson([{"event": "workflow_run", "payload": fixture(other)}]))
    done = replay(path, config=None)
    assert done.returncode == 0 and json.loads(done.stdout) == {"alerts": []}
    assert ": skipped:" not in done.stderr


def test_replay_shows_the_evidence_the_alert_shows(tmp_path: Path) -> None:
    """HUD's failure lines and the pushes' files: a verdict per job and ranked suspects."""
    trunk = Trunk.linear(10, TIMM, salt="evidence")
    for i in range(10):
        for name in TIMM:
            failing = name == TIMM[1] and i >= 7
            trunk.set(i, name, "failure" if failing else "success",
                      line="FAILED inductor/test_timm.py::T::test_resnet - RuntimeError: boom")
            if not failing and i in (5, 6):
                del trunk.runs[(i, name)]  # 5..7 are the suspects: no results there
    deliveries = [trunk.push_delivery(0, 9)]
    for change in deliveries[0]["payload"]["commits"]:
        index = trunk.shas.index(change["id"])
        change["modified"] = (["test/inductor/test_timm.py"] if index == 6
                              else [f"torch/fx/f{index}.py"])
    pushes = tmp_path / "pushes.ndjson"
    pushes.write_text(ndjson(deliveries))
    done = replay(write(tmp_path / "page.json", trunk.hud_page()), pushes)
    (alert,) = alerts_of(done)
    (job,) = alert["jobs"]
    assert job["verdict"] == "real"
    assert job["evidence"] == ["the same error on 3 failing commits in a row "
                               "(every failing commit)"]
    assert alert["suspects_ranked"] is True
    assert alert["ranking"][0]["sha"] == trunk.shas[6]
    assert alert["ranking"][0]["reasons"] == [
        "touches test/inductor/test_timm.py, the failing test's file"]
    assert [r["class"] for r in alert["failed_runs"]] == ["test"]
    text = replay(tmp_path / "page.json", tmp_path / "pushes.ndjson", fmt="text").stdout
    assert "Looks real: the same error on 3 failing commits in a row" in text
    assert "suspects, most likely first:" in text
    assert "why: touches test/inductor/test_timm.py, the failing test's file" in text


def test_a_failed_batch_forgets_the_string_ids_it_rolled_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Replay's batches share interned string ids; a batch that fails after interning new
    strings rolls them back, so the ids must go with them: every stored result still
    names its job (a stale id would point at nothing, or at another string)."""
    import io

    from bot.domain.route import Route
    from bot.ingest import replay as replaying
    from bot.store import results
    from bot.store.db import Store

    trunk = broken_trunk(n=10, broken_at=6)
    path = tmp_path / "in.ndjson"
    path.write_text(ndjson(trunk.deliveries()))
    real = results.record_batch
    failed: list[int] = []

    def record_once_failing(db: Any, items: Any, interned: Any = None) -> Any:
        recorded = real(db, items, interned)  # interns the batch's strings, then fails
        if not failed and len(items) > 1:
            failed.append(len(items))
            raise ValueError("disk hiccup")
        return recorded

    monkeypatch.setattr(results, "record_batch", record_once_failing)
    monkeypatch.setattr(replaying, "BATCH_MIN", 30)
    store = Store(tmp_path / "r.db")
    store.migrate()
    try:
        details, problems = replaying.replay(store, (Route(),), [path], io.StringIO())
        assert failed and not problems, "the batch failed once, then each delivery alone"
        names = store.db.execute(
            "SELECT count(*), count(s.text) FROM results r "
            "LEFT JOIN ci_strings s ON s.id = r.job_name").fetchone()
        assert names[0] > 0 and names[0] == names[1]
        assert [d.state for d in details] == ["open"]
    finally:
        store.close()
