"""Parsing GitHub push and workflow_job payloads (shared fixtures and malformed ones)."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.model import Commit
from bot.domain.payload import PayloadError, parse_timestamp
from bot.github.jobs import _checked, job_from_api, job_result, quick_job_result
from bot.ingest.github_payloads import (
    parse_push,
    parse_workflow_job,
    pr_number_from_message,
)
from tests.support.fixtures import fixture_json


def load(name: str) -> dict[str, Any]:
    return fixture_json("github", name)


# --- workflow_job -------------------------------------------------------------------

JOB = load("workflow_job.completed.failure.with-organization.payload.json")


@pytest.mark.parametrize(
    ("fixture", "status", "conclusion"),
    [
        ("workflow_job.completed.failure.with-organization.payload.json", "completed", "failure"),
        ("workflow_job.completed.success.with-organization.payload.json", "completed", "success"),
        ("workflow_job.in_progress.payload.json", "in_progress", None),
        ("workflow_job.queued.payload.json", "queued", None),
        ("workflow_job.waiting.payload.json", "waiting", None),
    ],
)
def test_workflow_job_fixtures_parse(fixture: str, status: str, conclusion: str | None) -> None:
    payload = load(fixture)
    raw = payload["workflow_job"]
    result = parse_workflow_job(payload)
    assert result.repo == payload["repository"]["full_name"]
    assert result.sha == raw["head_sha"]
    assert result.branch == raw["head_branch"]
    assert result.workflow == raw["workflow_name"]
    assert result.job_name == raw["name"]
    assert result.job_id == raw["id"]
    assert result.run_id == raw["run_id"]
    assert result.attempt == raw["run_attempt"]
    assert result.html_url == raw["html_url"]
    assert (result.status, result.conclusion) == (status, conclusion)
    assert result.log_url is None
    assert result.failure_lines == ()
    assert result.source == "github"
    assert result.started_at is not None and result.started_at.tzinfo is not None


def test_workflow_job_completed_failure_details() -> None:
    result = parse_workflow_job(JOB)
    assert result.workflow == "CodeQL"
    assert result.job_name == "linters"
    assert result.started_at == datetime(2021, 8, 5, 10, 34, 58, tzinfo=UTC)
    assert result.completed_at == datetime(2021, 8, 5, 10, 38, 16, tzinfo=UTC)


def test_workflow_job_unfinished_has_no_completion_time() -> None:
    result = parse_workflow_job(load("workflow_job.in_progress.payload.json"))
    assert result.completed_at is None


def test_workflow_job_zero_time_is_none() -> None:
    payload = load("workflow_job.queued.payload.json")
    payload["workflow_job"]["started_at"] = "0001-01-01T00:00:00Z"
    assert parse_workflow_job(payload).started_at is None


def _without(payload: dict[str, Any], *path: str) -> dict[str, Any]:
    broken = copy.deepcopy(payload)
    target = broken
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return broken


def _with(payload: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    broken = copy.deepcopy(payload)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_without(JOB, "workflow_job"), "workflow_job"),
        (_without(JOB, "action"), "action"),
        (_without(JOB, "repository"), "repository"),
        (_without(JOB, "repository", "full_name"), "repository.full_name"),
        (_without(JOB, "workflow_job", "head_sha"), "workflow_job.head_sha"),
        (_without(JOB, "workflow_job", "workflow_name"), "workflow_job.workflow_name"),
        (_without(JOB, "workflow_job", "id"), "workflow_job.id"),
        (_without(JOB, "workflow_job", "status"), "workflow_job.status"),
        (_with(JOB, "289782451", "workflow_job", "id"), "workflow_job.id"),
        (_with(JOB, True, "workflow_job", "run_attempt"), "workflow_job.run_attempt"),
        (_with(JOB, 5, "workflow_job", "conclusion"), "workflow_job.conclusion"),
        (_with(JOB, "yesterday", "workflow_job", "started_at"), "workflow_job.started_at"),
        (_with(JOB, [], "workflow_job"), "workflow_job"),
        ([], "payload"),
    ],
)
def test_malformed_workflow_job_names_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PayloadError, match="^" + re.escape(field) + ":"):
        parse_workflow_job(payload)


def test_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)


def test_job_from_api_is_a_poller_result() -> None:
    item = copy.deepcopy(JOB["workflow_job"])
    item["run_attempt"] = 2
    item["completed_at"] = None
    result = job_from_api(item, "pytorch/pytorch")
    assert result.repo == "pytorch/pytorch"
    assert result.source == "poller"
    assert result.attempt == 2
    assert result.completed_at is None
    assert result.workflow == "CodeQL"


def test_job_from_api_rejects_missing_fields() -> None:
    with pytest.raises(PayloadError, match=r"^job\.head_sha: missing"):
        job_from_api(_without(JOB["workflow_job"], "head_sha"), "o/r")


# --- push ---------------------------------------------------------------------------


def test_push_new_branch_fixture() -> None:
    event = parse_push(load("push.with-new-branch.payload.json"))
    assert event.repo == "Codertocat/Hello-World"
    assert event.ref == "refs/heads/master"
    assert event.branch == "master"
    assert event.before == "0" * 40
    assert event.after == "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
    assert (event.created, event.deleted, event.forced) == (True, False, False)
    assert event.commits == (
        Commit(
            sha="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            title="Initial commit",
            author="Codertocat",
            pr_number=None,
            time=datetime(2019, 5, 15, 15, 19, 25, tzinfo=UTC),
            url="https://github.com/Codertocat/Hello-World/commit/6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        ),
    )


def test_push_tag_delete_fixture_has_no_branch() -> None:
    event = parse_push(load("push.payload.json"))
    assert event.ref == "refs/tags/simple-tag"
    assert event.branch is None
    assert event.deleted is True
    assert event.commits == ()


def _trunk_push(commits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ref": "refs/heads/main",
        "before": "a" * 40,
        "after": commits[-1]["id"] if commits else "a" * 40,
        "forced": False,
        "created": False,
        "deleted": False,
        "commits": commits,
        "repository": {"full_name": "pytorch/pytorch"},
    }


def test_push_keeps_order_and_reads_pr_numbers_and_authors() -> None:
    commits = [
        {
            "id": "1" * 40,
            "message": "[inductor] Fix foo (#12345)\n\nLonger body.",
            "timestamp": "2025-12-09T09:00:00-08:00",
            "url": "https://github.com/pytorch/pytorch/commit/111",
            "author": {"name": "Jane Doe", "email": "j@x", "username": "jane"},
        },
        {
            "id": "2" * 40,
            "message": (
                "ghstack title\n\nStack from ghstack\n"
                "Pull Request resolved: https://github.com/pytorch/pytorch/pull/777\n"
            ),
            "timestamp": "2025-12-09T17:05:00Z",
            "url": "https://github.com/pytorch/pytorch/commit/222",
            "author": {"name": "No Username"},
        },
        {
            "id": "3" * 40,
            "message": 'Revert "[inductor] Fix foo (#12345)"\n\nThis reverts commit 111.',
            "timestamp": "2025-12-09T17:10:00Z",
            "url": "https://github.com/pytorch/pytorch/commit/333",
            "author": {"name": "pytorchmergebot", "username": "pytorchmergebot"},
        },
    ]
    event = parse_push(_trunk_push(commits))
    assert event.branch == "main"
    assert [c.sha for c in event.commits] == ["1" * 40, "2" * 40, "3" * 40]
    assert [c.title for c in event.commits] == [
        "[inductor] Fix foo (#12345)",
        "ghstack title",
        'Revert "[inductor] Fix foo (#12345)"',
    ]
    assert [c.author for c in event.commits] == ["jane", "No Username", "pytorchmergebot"]
    assert [c.pr_number for c in event.commits] == [12345, 777, None]
    assert event.commits[0].time == datetime(2025, 12, 9, 17, 0, tzinfo=UTC)
    assert event.commits[0].time.utcoffset() == timedelta(hours=-8)
    assert [c.files for c in event.changes] == [(), (), ()]
    assert event.changes[2].message.endswith("This reverts commit 111.")


def test_push_lists_the_files_each_commit_touched() -> None:
    commit = {"id": "1" * 40, "message": "m", "added": ["a.py"], "removed": ["b.py"],
              "modified": ["c.py", "a.py"]}
    [change] = parse_push(_trunk_push([commit])).changes
    assert (change.sha, change.files) == ("1" * 40, ("a.py", "b.py", "c.py"))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("Fix (#1)", 1),
        ("Fix (#123)  \nbody", 123),
        ("Fix (#12) more words", None),
        ("Fix #12", None),
        ("t\n\nPull Request resolved: https://github.com/o/r/pull/55", 55),
        ("t\n\nPull Request resolved: https://example.com/o/r/pull/55", None),
        ("Title (#1)\n\nPull Request resolved: https://github.com/o/r/pull/2", 1),
        ("", None),
    ],
)
def test_pr_number_from_message(message: str, expected: int | None) -> None:
    assert pr_number_from_message(message) == expected


PUSH = load("push.with-new-branch.payload.json")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_without(PUSH, "ref"), "ref"),
        (_without(PUSH, "before"), "before"),
        (_without(PUSH, "after"), "after"),
        (_without(PUSH, "commits"), "commits"),
        (_without(PUSH, "repository"), "repository"),
        (_with(PUSH, "yes", "forced"), "forced"),
        (_with(PUSH, None, "commits"), "commits"),
        (_with(PUSH, ["abc"], "commits"), r"commits\[0\]"),
        (_without(PUSH, "commits", 0, "id"), r"commits\[0\]\.id"),
        (_with(PUSH, "May 15", "commits", 0, "timestamp"), r"commits\[0\]\.timestamp"),
        (_with(PUSH, "someone", "commits", 0, "author"), r"commits\[0\]\.author"),
        (_with(PUSH, "a.py", "commits", 0, "added"), r"commits\[0\]\.added"),
        (_with(PUSH, [1], "commits", 0, "modified"), r"commits\[0\]\.modified\[0\]"),
    ],
)
def test_malformed_push_names_the_field(payload: Any, field: str) -> None:
    with pytest.raises(PayloadError, match=rf"^{field}:"):
        parse_push(payload)


# --- timestamps ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-08-05T10:26:08.000Z", datetime(2021, 8, 5, 10, 26, 8, tzinfo=UTC)),
        ("2021-08-05T10:26:08Z", datetime(2021, 8, 5, 10, 26, 8, tzinfo=UTC)),
        ("2021-08-05 10:26:08", datetime(2021, 8, 5, 10, 26, 8, tzinfo=UTC)),
        (
            "2021-08-05T12:26:08+02:00",
            datetime(2021, 8, 5, 12, 26, 8, tzinfo=timezone(timedelta(hours=2))),
        ),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_timestamp(text: str | None, expected: datetime | None) -> None:
    parsed = parse_timestamp(text, "t")
    assert parsed == expected
    assert parsed is None or parsed.tzinfo is not None


@pytest.mark.parametrize("bad", ["not a time", 1700000000, "2021-13-01T00:00:00Z"])
def test_parse_timestamp_rejects_garbage(bad: Any) -> None:
    with pytest.raises(PayloadError, match="^when:"):
        parse_timestamp(bad, "when")


# --- the quick path for well-formed jobs agrees with the field-by-field checks -----------------

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.text(max_size=5),
                    st.just("a" * 40), st.just("A" * 40), st.just("2021-08-05T10:34:58Z"),
                    st.just("0001-01-01T00:00:00Z"), st.just("not a time"), st.just({}))
_FIELDS = ("head_sha", "head_branch", "workflow_name", "name", "id", "run_id", "run_attempt",
           "status", "conclusion", "html_url", "started_at", "completed_at")


@given(st.dictionaries(st.sampled_from(_FIELDS), _VALUES))
def test_quick_job_parsing_agrees_with_the_checks(overrides: dict[str, Any]) -> None:
    job = {"head_sha": "b" * 40, "head_branch": "main", "workflow_name": "inductor",
           "name": "test", "id": 12, "run_id": 34, "run_attempt": 1, "status": "completed",
           "conclusion": "failure", "html_url": "https://x", "started_at": None,
           "completed_at": "2021-08-05T10:34:58Z", **overrides}
    quick = quick_job_result(job, "o/r", "github")
    try:
        expected = _checked(job, "o/r", "github", "workflow_job")
    except PayloadError as exc:
        assert quick is None
        with pytest.raises(PayloadError, match=re.escape(str(exc))):
            job_result(job, "o/r", "github", "workflow_job")
        return
    assert quick is None or quick == expected
    assert job_result(job, "o/r", "github", "workflow_job") == expected
