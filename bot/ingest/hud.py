"""PyTorch HUD pages (``/api/hud/{owner}/{repo}/{branch}/{page}``) to commits and job results."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bot.domain.cells import FLAKY
from bot.domain.jobkey import split_job_name
from bot.domain.model import Commit, JobResult
from bot.domain.payload import (
    PayloadError,
    checked,
    field_of,
    optional_field,
    parse_timestamp,
    sha_field,
)

# Conclusions after which a job will not change again (HUD also reports "flaky").
FINAL_CONCLUSIONS = frozenset(
    {
        "success",
        "failure",
        "timed_out",
        "cancelled",
        "skipped",
        "neutral",
        "startup_failure",
        "flaky",
        "action_required",
        "stale",
    }
)
# HUD leaves a running job's conclusion empty or says "pending"; both mean "not done".
UNFINISHED_STATUS = "pending"


@dataclass(frozen=True, slots=True)
class HudPage:
    """One HUD page: its commits newest first, and one result per job that ran on one."""

    commits: tuple[Commit, ...] = field(default_factory=tuple)
    results: tuple[JobResult, ...] = field(default_factory=tuple)
    job_names: tuple[str, ...] = field(default_factory=tuple)
    # rows and cells that failed validation, each with the reason; the rest of the page
    # is used (one bad row must not stop every commit after it from being ingested)
    skipped: tuple[str, ...] = field(default_factory=tuple)


def synthetic_job_id(sha: str, full_name: str) -> int:
    """A stable negative id for a HUD cell that has none.

    Negative so it can never collide with a real (positive) GitHub job id; derived
    from a digest rather than ``hash()`` because ``hash()`` of a string changes
    between processes, and the id must match when the same page is read again.
    Fits in a signed 64-bit integer (SQLite's INTEGER).
    """
    key = f"{len(sha)}:{sha}{full_name}"  # length prefix: no two (sha, name) pairs collide
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return -(int.from_bytes(digest, "big") >> 1) - 1


def _digits(value: Any, path: str) -> int:
    """An integer, or a string of ASCII digits, within SQLite's 64-bit range."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value)
    return checked(value, int, path)


def _pr_number(value: Any, path: str) -> int | None:
    if value is None or value == "":
        return None
    return _digits(value, path)


def _job_id(cell: Mapping[str, Any], sha: str, full_name: str, path: str) -> int:
    value = cell.get("id")
    if value is None or value == "":
        return synthetic_job_id(sha, full_name)
    return _digits(value, path)


def _status(conclusion: str | None) -> tuple[str, str | None]:
    """HUD has only a conclusion; split it into the model's status and conclusion."""
    if conclusion in FINAL_CONCLUSIONS:
        return "completed", conclusion
    return conclusion or UNFINISHED_STATUS, None


def _failure_lines(cell: Mapping[str, Any], path: str) -> tuple[str, ...]:
    lines = optional_field(cell, "failureLines", list, path) or []
    return tuple(checked(line, str, f"{path}[{i}]") for i, line in enumerate(lines))


def _commit(row: Mapping[str, Any], path: str) -> Commit:
    return Commit(
        sha=sha_field(row, "sha", f"{path}.sha"),
        title=optional_field(row, "commitTitle", str, f"{path}.commitTitle") or "",
        author=optional_field(row, "author", str, f"{path}.author") or "",
        pr_number=_pr_number(row.get("prNum"), f"{path}.prNum"),
        time=parse_timestamp(row.get("time"), f"{path}.time"),
        url=optional_field(row, "commitUrl", str, f"{path}.commitUrl"),
    )


def _split(names: list[Any]) -> list[tuple[str, str, str]]:
    split: list[tuple[str, str, str]] = []
    for i, name in enumerate(names):
        full = checked(name, str, f"jobNames[{i}]")
        try:
            workflow, job_name = split_job_name(full)
        except ValueError as exc:
            raise PayloadError(f"jobNames[{i}]: {exc}") from None
        split.append((full, workflow, job_name))
    return split


def _check_newest_first(commits: list[Commit]) -> None:
    """Refuse a page listed oldest first: its rows would be placed on trunk in reverse.

    HUD lists the newest commit first, and trunk order is taken from that order, not
    from the times (commit times are not push order). A page whose every time is later
    than the one before it was written the other way round, by hand or by a script.
    """
    times = [c.time for c in commits if c.time is not None]
    if len(times) >= 2 and times[0] < times[-1] and all(
            a <= b for a, b in zip(times, times[1:], strict=False)):
        raise PayloadError("shaGrid: the rows are oldest first (their `time` fields only "
                           "grow); HUD lists the newest commit first, so reverse shaGrid")


def _cell_runs(cell: Mapping[str, Any], path: str, repo: str, branch: str | None, sha: str,
               full: str, workflow: str, job_name: str) -> list[JobResult]:
    """The runs behind one HUD cell.

    HUD merges every run of a cell (``mergeCellRuns``) and, when there was more than one,
    lists them in ``cellRuns``: each becomes its own result, so the failed run behind a
    flaky pass keeps its link and the merge here sees the same set HUD saw. A cell without
    ``cellRuns`` is one run, or a merged one: ``failedPreviousRun`` on a success (and the
    older ``conclusion: "flaky"``) is HUD saying the shard failed and passed.
    """
    raw_runs = optional_field(cell, "cellRuns", list, f"{path}.cellRuns")
    if raw_runs:
        return [_run(checked(raw, dict, f"{path}.cellRuns[{i}]"), f"{path}.cellRuns[{i}]",
                     repo, branch, sha, full, workflow, job_name, i)
                for i, raw in enumerate(raw_runs)]
    result = _run(cell, path, repo, branch, sha, full, workflow, job_name, None)
    if result.conclusion == "success" and optional_field(
            cell, "failedPreviousRun", bool, f"{path}.failedPreviousRun"):
        result = replace(result, conclusion=FLAKY)
    return [result]


def _run(run: Mapping[str, Any], path: str, repo: str, branch: str | None, sha: str,
         full: str, workflow: str, job_name: str, index: int | None) -> JobResult:
    status, conclusion = _status(optional_field(run, "conclusion", str, f"{path}.conclusion"))
    # a run of a cell without an id gets one from its place and content, like HUD's own key
    ident = full if index is None else f"{full}#{index}:{conclusion}:{run.get('htmlUrl')}"
    return JobResult(
        repo=repo,
        sha=sha,
        workflow=workflow,
        job_name=job_name,
        job_id=_job_id(run, sha, ident, f"{path}.id"),
        status=status,
        conclusion=conclusion,
        run_id=None,
        attempt=1,
        branch=branch,
        html_url=optional_field(run, "htmlUrl", str, f"{path}.htmlUrl"),
        log_url=optional_field(run, "logUrl", str, f"{path}.logUrl"),
        failure_lines=_failure_lines(run, f"{path}.failureLines"),
        source="hud",
    )


def parse_hud_page(data: Any, repo: str, branch: str | None = None) -> HudPage:
    """A decoded HUD page as commits (newest first, as HUD sends them) and job results.

    Each non-empty ``jobs[i]`` cell becomes one ``JobResult`` for ``jobNames[i]`` per run
    behind it (see ``_cell_runs``). HUD does not say which attempt a run was, so
    ``attempt`` is 1 and ``run_id`` unknown: the merge does not need them.
    ``branch`` is the branch the page was fetched for; the page itself does not say.
    """
    data = checked(data, dict, "page")
    grid = field_of(data, "shaGrid", list, "shaGrid")
    names = _split(field_of(data, "jobNames", list, "jobNames"))
    commits: list[Commit] = []
    results: list[JobResult] = []
    skipped: list[str] = []
    for r, raw_row in enumerate(grid):
        path = f"shaGrid[{r}]"
        try:
            row = checked(raw_row, dict, path)
            commit = _commit(row, path)
            jobs = optional_field(row, "jobs", list, f"{path}.jobs") or []
            if len(jobs) > len(names):
                raise PayloadError(
                    f"{path}.jobs: {len(jobs)} cells but only {len(names)} jobNames"
                )
        except PayloadError as exc:
            skipped.append(str(exc))
            continue
        commits.append(commit)
        for j, raw_cell in enumerate(jobs):
            cell_path = f"{path}.jobs[{j}]"
            try:
                cell = checked(raw_cell, dict, cell_path) if raw_cell is not None else {}
                if not cell:
                    continue  # the job did not run on this commit
                full, workflow, job_name = names[j]
                runs = _cell_runs(cell, cell_path, repo, branch, commit.sha, full, workflow,
                                  job_name)
            except PayloadError as exc:
                skipped.append(str(exc))
                continue
            results.extend(runs)
    _check_newest_first(commits)
    return HudPage(
        commits=tuple(commits),
        results=tuple(results),
        job_names=tuple(full for full, _, _ in names),
        skipped=tuple(skipped),
    )

