"""Parsing HUD pages into commits and job results, on hand-written and generated pages."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.jobkey import job_key
from bot.domain.payload import PayloadError
from bot.ingest.hud import FINAL_CONCLUSIONS, parse_hud_page, synthetic_job_id

NAMES = [
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 1, 2, linux.g5.4xlarge)",
    "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 2, 2, linux.g5.4xlarge)",
    "inductor-periodic / cuda12.8-py3.10-gcc9-sm86 / test (dynamo_eager)",
]

PAGE: dict[str, Any] = {
    "shaGrid": [
        {
            "sha": "c" * 40,
            "time": "2025-12-09T17:20:00Z",
            "commitUrl": "https://github.com/pytorch/pytorch/commit/" + "c" * 40,
            "commitTitle": "[inductor] newest (#300)",
            "commitMessageBody": "body",
            "author": "alice",
            "authorUrl": "https://github.com/alice",
            "prNum": 300,
            "diffNum": None,
            "isForcedMerge": False,
            "jobs": [
                {
                    "id": 9001,
                    "conclusion": "failure",
                    "htmlUrl": "https://github.com/pytorch/pytorch/actions/runs/1/job/9001",
                    "logUrl": "https://ossci-raw-job-status.s3.amazonaws.com/log/9001",
                    "durationS": 3600,
                    "failureLines": ["RuntimeError: boom", "AssertionError"],
                    "failureLineNumbers": [10, 20],
                    "failureCaptures": ["RuntimeError"],
                    "repo": "pytorch/pytorch",
                    "runOrigin": None,
                },
                {"id": 9002, "conclusion": "pending", "htmlUrl": "h2"},
                {},
            ],
        },
        {
            "sha": "b" * 40,
            "time": "2025-12-09T17:10:00Z",
            "commitTitle": "older",
            "author": "bob",
            "prNum": None,
            "jobs": [{"id": 8001, "conclusion": "success"}, {}, {"conclusion": "flaky"}],
        },
        {"sha": "a" * 40, "commitTitle": "no jobs yet", "jobs": []},
    ],
    "jobNames": NAMES,
}


def test_commits_newest_first_with_metadata() -> None:
    page = parse_hud_page(PAGE, "pytorch/pytorch")
    assert [c.sha for c in page.commits] == ["c" * 40, "b" * 40, "a" * 40]
    newest = page.commits[0]
    assert newest.title == "[inductor] newest (#300)"
    assert newest.author == "alice"
    assert newest.pr_number == 300
    assert newest.time == datetime(2025, 12, 9, 17, 20, tzinfo=UTC)
    assert newest.url == "https://github.com/pytorch/pytorch/commit/" + "c" * 40
    assert page.commits[1].pr_number is None
    assert page.commits[2].time is None
    assert page.job_names == tuple(NAMES)


def test_one_result_per_non_empty_cell() -> None:
    page = parse_hud_page(PAGE, "pytorch/pytorch", branch="main")
    heads = [(r.sha[0], r.job_id) for r in page.results][:3]
    assert heads == [("c", 9001), ("c", 9002), ("b", 8001)]
    assert len(page.results) == 4
    failed = page.results[0]
    assert failed.repo == "pytorch/pytorch"
    assert failed.branch == "main"
    assert failed.workflow == "inductor"
    assert failed.job_name == (
        "cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface, 1, 2, linux.g5.4xlarge)"
    )
    assert (failed.status, failed.conclusion) == ("completed", "failure")
    assert failed.failure_lines == ("RuntimeError: boom", "AssertionError")
    assert failed.log_url == "https://ossci-raw-job-status.s3.amazonaws.com/log/9001"
    assert failed.html_url == "https://github.com/pytorch/pytorch/actions/runs/1/job/9001"
    assert (failed.run_id, failed.attempt, failed.source) == (None, 1, "hud")
    pending = page.results[1]
    assert (pending.status, pending.conclusion) == ("pending", None)
    assert job_key(pending.workflow, pending.job_name) == job_key(failed.workflow, failed.job_name)


def test_cell_without_id_gets_stable_negative_id() -> None:
    flaky = parse_hud_page(PAGE, "pytorch/pytorch").results[3]
    assert (flaky.status, flaky.conclusion) == ("completed", "flaky")
    assert flaky.job_id < 0
    assert flaky.job_id == synthetic_job_id("b" * 40, NAMES[2])
    # Same page read again (e.g. next poll) yields the same id.
    assert parse_hud_page(copy.deepcopy(PAGE), "pytorch/pytorch").results[3].job_id == flaky.job_id


@given(
    a=st.tuples(st.text(max_size=40), st.text(max_size=80)),
    b=st.tuples(st.text(max_size=40), st.text(max_size=80)),
)
def test_synthetic_ids_are_negative_64_bit_and_distinct(
    a: tuple[str, str], b: tuple[str, str]
) -> None:
    ida, idb = synthetic_job_id(*a), synthetic_job_id(*b)
    assert -(2**63) <= ida < 0
    assert (ida == idb) == (a == b)


# --- generated pages ------------------------------------------------------------------

_CONCLUSIONS = sorted(FINAL_CONCLUSIONS) + ["pending", "queued", "in_progress", None]
_job_names = st.lists(
    st.builds(
        lambda wf, cfg, shard: f"{wf} / linux-py3 / test ({cfg}, {shard}, 3, linux.g5)",
        st.sampled_from(["inductor", "inductor-periodic", "trunk"]),
        st.sampled_from(["default", "inductor_huggingface", "inductor_timm"]),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=6,
    unique=True,
)


@st.composite
def hud_pages(draw: st.DrawFn) -> tuple[dict[str, Any], list[list[Any]]]:
    """A page plus, per row, the conclusion drawn for each job (``"absent"`` = ``{}``)."""
    names = draw(_job_names)
    sha = st.text("0123456789abcdef", min_size=40, max_size=40)
    shas = draw(st.lists(sha, max_size=8, unique=True))
    truth: list[list[Any]] = []
    rows = []
    for sha in shas:
        width = draw(st.integers(0, len(names)))
        drawn = [draw(st.sampled_from([*_CONCLUSIONS, "absent"])) for _ in range(width)]
        truth.append(drawn)
        cells: list[dict[str, Any]] = []
        for conclusion in drawn:
            if conclusion == "absent":
                cells.append({})
            else:
                cell: dict[str, Any] = {"conclusion": conclusion, "failureLines": [sha[:6]]}
                if draw(st.booleans()):
                    cell["id"] = draw(st.integers(1, 2**40))
                cells.append(cell)
        rows.append({"sha": sha, "commitTitle": f"title {sha[:6]}", "jobs": cells})
    return {"shaGrid": rows, "jobNames": names}, truth


@given(hud_pages())
def test_generated_pages(page_and_truth: tuple[dict[str, Any], list[list[Any]]]) -> None:
    page, truth = page_and_truth
    parsed = parse_hud_page(page, "o/r")
    assert [c.sha for c in parsed.commits] == [row["sha"] for row in page["shaGrid"]]
    expected = [
        (row["sha"], page["jobNames"][j], conclusion)
        for row, drawn in zip(page["shaGrid"], truth, strict=True)
        for j, conclusion in enumerate(drawn)
        if conclusion != "absent"
    ]
    assert len(parsed.results) == len(expected)
    for result, (sha, name, conclusion) in zip(parsed.results, expected, strict=True):
        assert result.sha == sha
        assert f"{result.workflow} / {result.job_name}" == name
        assert result.failure_lines == (sha[:6],)
        if conclusion in FINAL_CONCLUSIONS:
            assert (result.status, result.conclusion) == ("completed", conclusion)
        else:
            assert (result.status, result.conclusion) == (conclusion or "pending", None)
    ids = [r.job_id for r in parsed.results]
    synthetic = [i for i in ids if i < 0]
    assert len(set(synthetic)) == len(synthetic)


# --- row order ------------------------------------------------------------------------


def _timed(*times: str | None) -> dict[str, Any]:
    row = PAGE["shaGrid"][0]
    return {"jobNames": PAGE["jobNames"], "shaGrid": [
        {**row, "sha": f"{i:x}" * 40, "time": time} for i, time in enumerate(times, start=1)]}


def test_a_page_listed_oldest_first_is_refused_with_the_fix() -> None:
    page = _timed("2025-12-09T10:00:00Z", "2025-12-09T11:00:00Z", "2025-12-09T12:00:00Z")
    with pytest.raises(PayloadError, match=r"shaGrid: .*oldest first.*reverse shaGrid"):
        parse_hud_page(page, "pytorch/pytorch")
    page["shaGrid"].reverse()
    assert len(parse_hud_page(page, "pytorch/pytorch").commits) == 3


@pytest.mark.parametrize("times", [
    ("2025-12-09T12:00:00Z", "2025-12-09T12:30:00Z", "2025-12-09T11:00:00Z"),  # one late row
    ("2025-12-09T12:00:00Z", "2025-12-09T12:00:00Z"),  # same minute
    ("2025-12-09T13:00:00Z", None, "2025-12-09T12:00:00Z"),  # newest first, one time unknown
    ("2025-12-09T12:00:00Z",),
])
def test_pages_that_are_not_clearly_reversed_are_read(times: tuple[str | None, ...]) -> None:
    """Commit times are not push order: only a page whose every time grows is refused."""
    assert len(parse_hud_page(_timed(*times), "pytorch/pytorch").commits) == len(times)


# --- malformed pages ------------------------------------------------------------------


def _broken(mutate: Any) -> dict[str, Any]:
    page = copy.deepcopy(PAGE)
    mutate(page)
    return page


@pytest.mark.parametrize(
    ("page", "field"),
    [
        ([], "page"),
        (_broken(lambda p: p.pop("shaGrid")), "shaGrid"),
        (_broken(lambda p: p.pop("jobNames")), "jobNames"),
        (_broken(lambda p: p.update(jobNames="x")), "jobNames"),
        (_broken(lambda p: p["jobNames"].append("no workflow separator")), "jobNames[3]"),
        (_broken(lambda p: p["jobNames"].append(7)), "jobNames[3]"),
    ],
)
def test_malformed_page_names_the_field(page: Any, field: str) -> None:
    with pytest.raises(PayloadError, match="^" + re.escape(field) + ":"):
        parse_hud_page(page, "pytorch/pytorch")


@pytest.mark.parametrize(
    ("page", "field", "commits", "results"),
    [
        (_broken(lambda p: p["shaGrid"].append("row")), "shaGrid[3]", 3, 4),
        (_broken(lambda p: p["shaGrid"][1].pop("sha")), "shaGrid[1].sha", 2, 2),
        (_broken(lambda p: p["shaGrid"][1].update(sha="HEAD~3")), "shaGrid[1].sha", 2, 2),
        (_broken(lambda p: p["shaGrid"][1].update(prNum=[1])), "shaGrid[1].prNum", 2, 2),
        (_broken(lambda p: p["shaGrid"][1].update(prNum=10**20)), "shaGrid[1].prNum", 2, 2),
        (_broken(lambda p: p["shaGrid"][1].update(prNum="\u0661")), "shaGrid[1].prNum", 2, 2),
        (_broken(lambda p: p["shaGrid"][1].update(time="soon")), "shaGrid[1].time", 2, 2),
        (_broken(lambda p: p["shaGrid"][1].update(time="9999-12-31T23:59:59-01:00")),
         "shaGrid[1].time", 2, 2),
        (_broken(lambda p: p["shaGrid"][1]["jobs"].append({})), "shaGrid[1].jobs", 2, 2),
        (_broken(lambda p: p["shaGrid"][0]["jobs"].__setitem__(2, "x")), "shaGrid[0].jobs[2]",
         3, 4),
        (
            _broken(lambda p: p["shaGrid"][0]["jobs"][0].update(failureLines="boom")),
            "shaGrid[0].jobs[0].failureLines", 3, 3,
        ),
        (
            _broken(lambda p: p["shaGrid"][0]["jobs"][0].update(id=1.5)),
            "shaGrid[0].jobs[0].id", 3, 3,
        ),
        (
            _broken(lambda p: p["shaGrid"][0]["jobs"][0].update(id=2**64)),
            "shaGrid[0].jobs[0].id", 3, 3,
        ),
        (
            _broken(lambda p: p["shaGrid"][0]["jobs"][0].update(conclusion=0)),
            "shaGrid[0].jobs[0].conclusion", 3, 3,
        ),
    ],
)
def test_a_bad_row_or_cell_is_skipped_and_counted(page: Any, field: str, commits: int,
                                                   results: int) -> None:
    """One bad row must not block the page: it is left out, with the reason, the rest used."""
    parsed = parse_hud_page(page, "pytorch/pytorch")
    assert [reason.split(":")[0] for reason in parsed.skipped] == [field]
    assert (len(parsed.commits), len(parsed.results)) == (commits, results)


def test_lenient_where_hud_is_loose() -> None:
    page = _broken(
        lambda p: (
            p["shaGrid"][1].update(prNum="301"),
            p["shaGrid"][0]["jobs"].__setitem__(2, None),
            p["shaGrid"][0]["jobs"][0].update(id="9001", failureLines=None),
        )
    )
    parsed = parse_hud_page(page, "pytorch/pytorch")
    assert parsed.commits[1].pr_number == 301
    assert parsed.results[0].job_id == 9001
    assert parsed.results[0].failure_lines == ()
    assert len(parsed.results) == 4


# --- HUD's flaky markers and merged runs ---------------------------------------------------------


def _one_cell(cell: dict[str, Any]) -> dict[str, Any]:
    return {"shaGrid": [{"sha": "d" * 40, "jobs": [cell]}], "jobNames": NAMES[:1]}


def test_failed_previous_run_on_a_success_is_a_flaky_pass() -> None:
    page = parse_hud_page(_one_cell({"id": 5, "conclusion": "success",
                                     "failedPreviousRun": True}), "pytorch/pytorch")
    (result,) = page.results
    assert (result.status, result.conclusion) == ("completed", "flaky")
    plain = parse_hud_page(_one_cell({"id": 5, "conclusion": "success"}), "pytorch/pytorch")
    assert plain.results[0].conclusion == "success"


def test_cell_runs_become_one_result_each_with_their_own_links() -> None:
    cell = {
        "id": "11", "conclusion": "success", "failedPreviousRun": True,
        "htmlUrl": "https://example.com/pass", "logUrl": "https://example.com/pass-log",
        "cellRuns": [
            {"id": "11", "conclusion": "success", "htmlUrl": "https://example.com/pass",
             "isRepresentative": True},
            {"id": "12", "conclusion": "failure", "runOrigin": "autorevert",
             "htmlUrl": "https://example.com/fail", "logUrl": "https://example.com/fail-log",
             "failureLines": ["boom"]},
            {"id": "13", "conclusion": "cancelled"},
        ],
    }
    page = parse_hud_page(_one_cell(cell), "pytorch/pytorch")
    by_id = {r.job_id: r for r in page.results}
    assert sorted(by_id) == [11, 12, 13]
    assert by_id[11].conclusion == "success"  # the set, not the merged marker, decides
    assert (by_id[12].conclusion, by_id[12].log_url, by_id[12].failure_lines) == (
        "failure", "https://example.com/fail-log", ("boom",))


def test_cell_runs_without_ids_get_distinct_stable_ids() -> None:
    cell = {"conclusion": "success", "cellRuns": [{"conclusion": "success"},
                                                   {"conclusion": "failure"}]}
    first = parse_hud_page(_one_cell(cell), "pytorch/pytorch")
    again = parse_hud_page(copy.deepcopy(_one_cell(cell)), "pytorch/pytorch")
    ids = [r.job_id for r in first.results]
    assert len(set(ids)) == 2 and all(i < 0 for i in ids)
    assert ids == [r.job_id for r in again.results]


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ({"conclusion": "success", "cellRuns": {}}, "jobs[0].cellRuns: expected list, got dict"),
        ({"conclusion": "success", "cellRuns": [3]}, "jobs[0].cellRuns[0]: expected dict, got int"),
        ({"conclusion": "success", "cellRuns": [{"conclusion": 1}]},
         "jobs[0].cellRuns[0].conclusion: expected str, got int"),
        ({"conclusion": "success", "failedPreviousRun": "yes"},
         "jobs[0].failedPreviousRun: expected bool, got str"),
    ],
)
def test_malformed_markers_are_refused_by_name(cell: dict[str, Any], message: str) -> None:
    """The cell is left out, named with its reason; the rest of the page is still read."""
    page = parse_hud_page(_one_cell(cell), "pytorch/pytorch")
    assert len(page.skipped) == 1 and message in page.skipped[0], page.skipped
    assert page.results == ()
