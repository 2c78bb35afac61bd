"""A small CI world in the fake GitHub: trunk commits with the files they touched, one
inductor run per commit with sharded jobs and their logs, and the webhooks GitHub would send.

Tests and ``bench/`` build incidents with it; ``push`` and ``job`` give the delivery bodies
(``push`` and ``workflow_job``), built from the fake's own REST objects so the two agree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from tests.fakes.github_api import BASE_TIME, FakeCommit, FakeGitHub, iso

REPO = "pytorch/pytorch"
WORKFLOW = ".github/workflows/inductor.yml"
BUILD = "cuda12.8-py3.10-gcc9-sm86"
RUNNER = "linux.g5.4xlarge.nvidia.gpu"


def shard(config: str, index: int, total: int) -> str:
    """A job name as GitHub shows it (without the workflow): one shard of a test config."""
    return f"{BUILD} / test ({config}, {index}, {total}, {RUNNER})"


def log_of(*lines: str) -> str:
    """A GitHub Actions log: every line stamped with its time, as the blob store serves it."""
    return "".join(f"2025-12-09T12:00:00.0000000Z {line}\n" for line in lines)


def failing_test_log(test: str, error: str, frame: str) -> str:
    """A pytest failure whose traceback ends in ``frame`` (a path in the repository)."""
    return log_of(
        "##[group]Run .ci/pytorch/test.sh",
        "Traceback (most recent call last):",
        '  File "/var/lib/jenkins/workspace/test/inductor/test_torchinductor.py", line 9, in t',
        "    self.common(fn, args)",
        f'  File "/opt/conda/lib/python3.10/site-packages/{frame}", line 120, in codegen',
        "    raise RuntimeError(msg)",
        error,
        f"FAILED [0.5s] {test} - {error}",
        "##[error]Process completed with exit code 1.",
    )


@dataclass
class World:
    """Trunk in the fake GitHub, oldest commit first."""

    github: FakeGitHub
    shas: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    files: list[tuple[str, ...]] = field(default_factory=list)
    runs: dict[int, int] = field(default_factory=dict)  # commit index -> run id

    def commit(self, title: str, files: tuple[str, ...] = ("torch/foo.py",),
               message: str | None = None) -> int:
        index = len(self.shas)
        sha = hashlib.sha1(f"world-{index}-{title}".encode()).hexdigest()
        self.shas.append(sha)
        self.titles.append(title)
        self.files.append(files)
        self.github.push_commit(REPO, "main", FakeCommit(
            sha, message or title, author=f"dev{index % 5}", date=self.time(index),
            files=files))
        return index

    def time(self, index: int) -> Any:
        return BASE_TIME + timedelta(minutes=20 * index)

    def run(self, index: int, jobs: dict[str, tuple[str, str | None]]) -> dict[str, int]:
        """One inductor run at commit ``index``: job name -> (conclusion, log); job ids back."""
        run = self.github.add_run(REPO, self.shas[index], path=WORKFLOW, name="inductor",
                                  created_at=self.time(index))
        self.runs[index] = run.id
        ids: dict[str, int] = {}
        for name, (conclusion, log) in jobs.items():
            job = self.github.add_job(run, name, conclusion=conclusion,
                                      started_at=self.time(index),
                                      completed_at=self.time(index) + timedelta(hours=1),
                                      log=log)
            ids[name] = job.id
        failed = any(c in ("failure", "timed_out") for c, _ in jobs.values())
        run.conclusion = "failure" if failed else "success"
        return ids

    def push(self, first: int, last: int | None = None) -> dict[str, Any]:
        """The ``push`` webhook that landed commits ``first..last`` (with their files)."""
        last = first if last is None else last
        commits = [{
            "id": self.shas[i], "message": self.titles[i], "timestamp": iso(self.time(i)),
            "url": f"https://github.com/{REPO}/commit/{self.shas[i]}",
            "author": {"name": f"dev{i % 5}", "username": f"dev{i % 5}"},
            "added": [], "removed": [], "modified": list(self.files[i]),
        } for i in range(first, last + 1)]
        before = self.shas[first - 1] if first > 0 else "0" * 40
        return {"ref": "refs/heads/main", "before": before, "after": self.shas[last],
                "created": False, "deleted": False, "forced": False, "commits": commits,
                "head_commit": commits[-1], "repository": {"full_name": REPO}}

    def job(self, job_id: int) -> dict[str, Any]:
        """The ``workflow_job`` webhook for one job, as it is now in the fake."""
        job = self.github.job_json(job_id)
        action = "completed" if job["status"] == "completed" else job["status"]
        return {"action": action, "workflow_job": job, "repository": {"full_name": REPO}}
