"""Synthetic trunk histories, rendered as HUD API pages or GitHub webhook deliveries.

Used by tests and by ``bench/``: a history is a list of commits, a list of sharded
job names and one conclusion per (commit, shard, attempt).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

REPO = "pytorch/pytorch"
BASE_TIME = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)


def sha_for(index: int, salt: str = "") -> str:
    return hashlib.sha1(f"commit-{salt}{index}".encode()).hexdigest()


@dataclass
class Attempt:
    conclusion: str  # success | failure | timed_out | cancelled | skipped | pending | ...
    job_id: int
    attempt: int = 1
    failure_line: str | None = None


@dataclass
class Trunk:
    """Commits oldest first; ``runs[(commit_index, full_job_name)]`` are the attempts."""

    shas: list[str]
    titles: list[str]
    authors: list[str]
    times: list[datetime]
    job_names: list[str]  # full names: "<workflow> / <job with shard>"
    runs: dict[tuple[int, str], list[Attempt]] = field(default_factory=dict)
    _next_id: int = 1000

    @classmethod
    def linear(cls, n: int, job_names: list[str], salt: str = "",
               start: datetime = BASE_TIME, spacing: timedelta = timedelta(minutes=20)) -> Trunk:
        return cls(
            shas=[sha_for(i, salt) for i in range(n)],
            titles=[f"Change number {i} (#{10000 + i})" for i in range(n)],
            authors=[f"dev{i % 7}" for i in range(n)],
            times=[start + spacing * i for i in range(n)],
            job_names=list(job_names),
        )

    def set(self, index: int, name: str, *conclusions: str, line: str | None = None) -> None:
        attempts = []
        for number, conclusion in enumerate(conclusions, start=1):
            self._next_id += 1
            attempts.append(Attempt(conclusion, self._next_id, number,
                                    line if conclusion == "failure" else None))
        self.runs[(index, name)] = attempts

    def fill(self, conclusion: str = "success") -> None:
        for index in range(len(self.shas)):
            for name in self.job_names:
                if (index, name) not in self.runs:
                    self.set(index, name, conclusion)

    # --- HUD --------------------------------------------------------------------------------

    def hud_page(self, newest: int | None = None, count: int | None = None) -> dict[str, Any]:
        """A HUD response covering commits ``newest`` down to ``newest-count+1``, newest first."""
        newest = len(self.shas) - 1 if newest is None else newest
        count = newest + 1 if count is None else count
        rows = []
        for index in range(newest, max(-1, newest - count), -1):
            jobs: list[dict[str, Any]] = []
            for name in self.job_names:
                attempts = self.runs.get((index, name))
                if not attempts:
                    jobs.append({})
                    continue
                final = attempts[-1]
                conclusion = final.conclusion
                if conclusion == "success" and any(a.conclusion == "failure"
                                                   for a in attempts[:-1]):
                    conclusion = "flaky"
                job: dict[str, Any] = {
                    "id": final.job_id,
                    "conclusion": conclusion,
                    "htmlUrl": f"https://github.com/{REPO}/actions/runs/1/job/{final.job_id}",
                    "logUrl": f"https://ossci-raw-job-status.s3.amazonaws.com/log/{final.job_id}",
                    "durationS": 600,
                    "failureLines": [final.failure_line] if final.failure_line else [],
                    "repo": REPO,
                }
                jobs.append(job)
            rows.append({
                "sha": self.shas[index],
                "time": self.times[index].isoformat().replace("+00:00", "Z"),
                "commitUrl": f"https://github.com/{REPO}/commit/{self.shas[index]}",
                "commitTitle": self.titles[index],
                "commitMessageBody": "",
                "author": self.authors[index],
                "authorUrl": f"https://github.com/{self.authors[index]}",
                "prNum": 10000 + index,
                "diffNum": None,
                "isForcedMerge": False,
                "jobs": jobs,
            })
        return {"shaGrid": rows, "jobNames": list(self.job_names)}

    # --- GitHub webhooks --------------------------------------------------------------------

    def push_delivery(self, first: int, last: int, before: str | None = None) -> dict[str, Any]:
        commits = [
            {
                "id": self.shas[i],
                "message": f"{self.titles[i]}\n\nbody",
                "timestamp": self.times[i].isoformat().replace("+00:00", "Z"),
                "url": f"https://github.com/{REPO}/commit/{self.shas[i]}",
                "author": {"name": self.authors[i], "username": self.authors[i],
                           "email": f"{self.authors[i]}@example.com"},
            }
            for i in range(first, last + 1)
        ]
        if before is None:
            before = self.shas[first - 1] if first > 0 else "0" * 40
        return {"event": "push", "payload": {
            "ref": "refs/heads/main", "before": before, "after": self.shas[last],
            "created": False, "deleted": False, "forced": False, "base_ref": None,
            "compare": "", "commits": commits, "head_commit": commits[-1] if commits else None,
            "repository": {"full_name": REPO, "name": "pytorch", "owner": {"login": "pytorch"}},
            "pusher": {"name": "pytorchmergebot"}, "sender": {"login": "pytorchmergebot"},
        }}

    def job_deliveries(self, index: int, name: str) -> list[dict[str, Any]]:
        return [self._job_delivery(index, name, a) for a in self.runs.get((index, name), [])]

    def _job_delivery(self, index: int, name: str, a: Attempt) -> dict[str, Any]:
        workflow, _, job = name.partition(" / ")
        done = a.conclusion not in ("pending", "queued", "in_progress")
        completed = self.times[index] + timedelta(hours=1, minutes=a.attempt)
        return {"event": "workflow_job", "payload": {
            "action": "completed" if done else "in_progress",
            "workflow_job": {
                "id": a.job_id, "run_id": 5000 + index, "run_attempt": a.attempt,
                "head_sha": self.shas[index], "head_branch": "main",
                "workflow_name": workflow, "name": job,
                "status": "completed" if done else "in_progress",
                "conclusion": a.conclusion if done else None,
                "html_url": f"https://github.com/{REPO}/actions/runs/{5000 + index}/job/{a.job_id}",
                "started_at": (completed - timedelta(minutes=30)).isoformat().replace(
                    "+00:00", "Z"),
                "completed_at": completed.isoformat().replace("+00:00", "Z") if done
                else None,
                "steps": [], "labels": [], "run_url": "", "url": "", "node_id": "",
                "check_run_url": "", "created_at": None, "runner_id": None,
                "runner_name": None, "runner_group_id": None, "runner_group_name": None,
            },
            "repository": {"full_name": REPO},
        }}

    def run_delivery(self, index: int, name: str, conclusion: str, *, job_id: int | None = None,
                     ref: str | None = None, run_id: int | None = None,
                     attempt: int = 1) -> dict[str, Any]:
        """One more run of a job at a commit, outside ``runs``: by default a restart
        dispatched on ``trunk/{sha}`` (a new run, attempt 1, a newer job id)."""
        if job_id is None:
            self._next_id += 1
            job_id = self._next_id
        delivery = self._job_delivery(index, name, Attempt(conclusion, job_id, attempt))
        job = delivery["payload"]["workflow_job"]
        job["head_branch"] = f"trunk/{self.shas[index]}" if ref is None else ref
        job["run_id"] = run_id if run_id is not None else 900_000 + job_id
        return delivery

    def deliveries(self, shuffle_seed: int | None = None,
                   push_batch: int = 1) -> list[dict[str, Any]]:
        """Pushes in order; each commit's job results after its push, optionally shuffled.

        With a seed, job deliveries are shuffled among themselves (late, out of order),
        while pushes keep their order, as GitHub delivers them.
        """
        pushes = [self.push_delivery(i, min(i + push_batch, len(self.shas)) - 1)
                  for i in range(0, len(self.shas), push_batch)]
        jobs = [d for (index, name) in sorted(self.runs) for d in self.job_deliveries(index, name)]
        if shuffle_seed is None:
            out: list[dict[str, Any]] = []
            by_commit: dict[str, list[dict[str, Any]]] = {}
            for d in jobs:
                by_commit.setdefault(d["payload"]["workflow_job"]["head_sha"], []).append(d)
            for p in pushes:
                out.append(p)
                for c in p["payload"]["commits"]:
                    out.extend(by_commit.get(c["id"], []))
            return out
        rng = random.Random(shuffle_seed)
        merged = list(pushes)
        for d in jobs:
            merged.insert(rng.randint(0, len(merged)), d)
        return merged


def ndjson(deliveries: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(d) + "\n" for d in deliveries)


def sharded(workflow: str, config: str, shards: int, runner: str = "linux.g5.4xlarge.nvidia.gpu",
            build: str = "cuda12.8-py3.10-gcc9-sm86") -> list[str]:
    return [f"{workflow} / {build} / test ({config}, {i}, {shards}, {runner})"
            for i in range(1, shards + 1)]
