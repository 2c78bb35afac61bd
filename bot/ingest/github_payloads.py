"""GitHub webhooks to domain data: ``push`` and ``workflow_job`` deliveries."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.domain.model import Commit, JobResult
from bot.domain.payload import checked, field_of, optional_field, parse_timestamp, sha_field
from bot.github.jobs import job_result, quick_job_result

BRANCH_REF_PREFIX = "refs/heads/"

_TITLE_PR = re.compile(r"\(#(\d+)\)\s*$")
_RESOLVED_PR = re.compile(
    r"^Pull Request resolved:\s*https://github\.com/[^/\s]+/[^/\s]+/pull/(\d+)", re.MULTILINE
)


def pr_number_from_message(message: str) -> int | None:
    """The PR a trunk commit came from: ``Title (#12345)`` or a ``Pull Request resolved:`` line.

    The title wins because it is what the merge bot writes last; ghstack commits
    carry only the ``Pull Request resolved:`` line.
    """
    title = message.split("\n", 1)[0]
    match = _TITLE_PR.search(title) or _RESOLVED_PR.search(message)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class PushEvent:
    """A ``push`` webhook: the trunk order of newly landed commits comes from here."""

    repo: str
    ref: str
    branch: str | None  # None for tags and other non-branch refs
    before: str
    after: str
    forced: bool = False
    created: bool = False
    deleted: bool = False
    commits: tuple[Commit, ...] = field(default_factory=tuple)  # oldest first
    changes: tuple[CommitChange, ...] = field(default_factory=tuple)  # same order


@dataclass(frozen=True, slots=True)
class CommitChange:
    """What one pushed commit touched (``added`` + ``removed`` + ``modified``) and its
    whole message (a revert names the reverted commit in its body)."""

    sha: str
    files: tuple[str, ...]
    message: str


def _repo_name(payload: Mapping[str, Any]) -> str:
    repository = field_of(payload, "repository", dict, "repository")
    return field_of(repository, "full_name", str, "repository.full_name")


def _push_commit(raw: Any, path: str) -> Commit:
    raw = checked(raw, dict, path)
    sha = sha_field(raw, "id", f"{path}.id")
    message = optional_field(raw, "message", str, f"{path}.message") or ""
    author = optional_field(raw, "author", dict, f"{path}.author") or {}
    author_name = (
        optional_field(author, "username", str, f"{path}.author.username")
        or optional_field(author, "name", str, f"{path}.author.name")
        or ""
    )
    return Commit(
        sha=sha,
        title=message.split("\n", 1)[0].strip(),
        author=author_name,
        pr_number=pr_number_from_message(message),
        time=parse_timestamp(raw.get("timestamp"), f"{path}.timestamp"),
        url=optional_field(raw, "url", str, f"{path}.url"),
    )


def _push_change(raw: dict[str, Any], path: str) -> CommitChange:
    files: list[str] = []
    for key in ("added", "removed", "modified"):
        for i, name in enumerate(optional_field(raw, key, list, f"{path}.{key}") or []):
            files.append(checked(name, str, f"{path}.{key}[{i}]"))
    return CommitChange(sha=raw["id"], files=tuple(dict.fromkeys(files)),
                        message=optional_field(raw, "message", str, f"{path}.message") or "")


def parse_push(payload: Any) -> PushEvent:
    """A ``push`` webhook body (already JSON-decoded) as a ``PushEvent``."""
    payload = checked(payload, dict, "payload")
    ref = field_of(payload, "ref", str, "ref")
    commits = field_of(payload, "commits", list, "commits")

    def flag(key: str) -> bool:
        return bool(optional_field(payload, key, bool, key))

    return PushEvent(
        repo=_repo_name(payload),
        ref=ref,
        branch=ref.removeprefix(BRANCH_REF_PREFIX) if ref.startswith(BRANCH_REF_PREFIX) else None,
        before=sha_field(payload, "before", "before"),
        after=sha_field(payload, "after", "after"),
        forced=flag("forced"),
        created=flag("created"),
        deleted=flag("deleted"),
        commits=tuple(_push_commit(raw, f"commits[{i}]") for i, raw in enumerate(commits)),
        changes=tuple(_push_change(raw, f"commits[{i}]") for i, raw in enumerate(commits)),
    )


def parse_workflow_job(payload: Any) -> JobResult:
    """A ``workflow_job`` webhook body as one attempt of one job.

    ``action`` must be present but is not kept: it always equals the job's
    ``status`` (queued, waiting, in_progress, completed). ``log_url`` stays ``None``
    because the webhook has none; ``bot.github.rest.logs_url()`` names the API endpoint.
    """
    if type(payload) is dict and type(payload.get("action")) is str:
        job, repository = payload.get("workflow_job"), payload.get("repository")
        if type(job) is dict and type(repository) is dict and type(
                repository.get("full_name")) is str:
            repo = repository["full_name"]
            quick = quick_job_result(job, repo, "github")  # the usual delivery, checked whole
            return quick if quick is not None else job_result(job, repo, "github",
                                                              "workflow_job")
    payload = checked(payload, dict, "payload")  # something is off: name the field
    field_of(payload, "action", str, "action")
    job = field_of(payload, "workflow_job", dict, "workflow_job")
    return job_result(job, _repo_name(payload), "github", "workflow_job")
