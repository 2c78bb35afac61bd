"""A fake PyTorch HUD API on 127.0.0.1: ``/api/hud/{owner}/{repo}/{branch}/{page}`` pages.

The world is a newest-first list of commits, each with the conclusions of the jobs that
ran on it; pages are cut from it the way HUD cuts them (``jobNames`` per page).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tests.fakes.github_api import (
    BASE_TIME,
    FakeHttpService,
    RecordedRequest,
    Reply,
    iso,
    json_reply,
)

BOT_HEADER = "x-hud-internal-bot"
DEFAULT_PER_PAGE = 50
_PAGE_PATH = re.compile(r"^/api/hud/(?P<owner>[^/]+)/(?P<repo>[^/]+)/(?P<branch>.+)/(?P<page>\d+)$")

# A cell is a conclusion ("failure", "pending", ...) or a full HUD job dict.
CellSpec = str | Mapping[str, Any]
RowSpec = tuple[str, Mapping[str, CellSpec]]


@dataclass(slots=True)
class HudRow:
    """One commit of the HUD world and its job cells by full job name."""

    sha: str
    time: datetime
    title: str
    author: str = "alice"
    pr_num: int | None = None
    cells: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeHud(FakeHttpService):
    """Serves HUD pages from per-(repo, branch) worlds; pages are 1-based like HUD's."""

    name = "fake-hud"

    def __init__(self) -> None:
        super().__init__()
        self.worlds: dict[tuple[str, str], list[HudRow]] = {}
        self._ids = itertools.count(50_000)

    # --- building the world ---------------------------------------------------------

    def _cell(self, sha: str, spec: CellSpec) -> dict[str, Any]:
        cell: dict[str, Any] = {"conclusion": spec} if isinstance(spec, str) else dict(spec)
        cell.setdefault("id", next(self._ids))
        job_id = cell["id"]
        cell.setdefault(
            "htmlUrl", f"https://github.com/pytorch/pytorch/actions/runs/1/job/{job_id}"
        )
        cell.setdefault("logUrl", f"https://ossci-raw-job-status.s3.amazonaws.com/log/{job_id}")
        cell.setdefault("durationS", 3600)
        failed = cell.get("conclusion") in ("failure", "timed_out", "startup_failure")
        cell.setdefault("failureLines", [f"RuntimeError: broken at {sha[:7]}"] if failed else [])
        return cell

    def set_rows(self, repo: str, branch: str, rows: Sequence[RowSpec]) -> None:
        """Replace a branch's world with ``(sha, {full job name: conclusion or cell})`` rows.

        Rows are newest first; commit times go back one minute per row.
        """
        with self._cond:
            self.worlds[(repo, branch)] = [
                HudRow(
                    sha=sha,
                    time=BASE_TIME - timedelta(minutes=i),
                    title=f"Commit {sha[:7]} (#{1000 + len(rows) - i})",
                    pr_num=1000 + len(rows) - i,
                    cells={name: self._cell(sha, spec) for name, spec in jobs.items()},
                )
                for i, (sha, jobs) in enumerate(rows)
            ]

    def push_row(self, repo: str, branch: str, sha: str, jobs: Mapping[str, CellSpec]) -> None:
        """Land a new commit on top of the branch."""
        with self._cond:
            world = self.worlds.setdefault((repo, branch), [])
            newest = world[0].time if world else BASE_TIME
            row = HudRow(sha, newest + timedelta(minutes=1), f"Commit {sha[:7]}")
            row.cells = {name: self._cell(sha, spec) for name, spec in jobs.items()}
            world.insert(0, row)

    def set_cell(self, repo: str, branch: str, sha: str, job_name: str, spec: CellSpec) -> None:
        """Change (or add) one job's cell on one commit: a late or rerun result."""
        with self._cond:
            row = next(r for r in self.worlds[(repo, branch)] if r.sha == sha)
            row.cells[job_name] = self._cell(sha, spec)

    @property
    def bot_headers(self) -> list[str | None]:
        """The ``x-hud-internal-bot`` value of every page request, in order."""
        with self._cond:
            return [r.headers.get(BOT_HEADER) for r in self.requests]

    # --- serving --------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        match = _PAGE_PATH.match(request.path)
        if request.method != "GET" or match is None:
            return json_reply(404, {"error": "not found"})
        try:
            per_page = int(request.query.get("per_page", DEFAULT_PER_PAGE))
        except ValueError:
            return json_reply(400, {"error": "per_page must be an integer"})
        page = int(match["page"])
        if per_page < 1 or page < 1:
            return json_reply(400, {"error": "page and per_page start at 1"})
        key = (f"{match['owner']}/{match['repo']}", match["branch"])
        with self._cond:
            rows = self.worlds.get(key, [])[(page - 1) * per_page : page * per_page]
            return json_reply(200, render_page(rows))


def render_page(rows: Sequence[HudRow]) -> dict[str, Any]:
    """Rows as HUD renders them: names of the jobs on these rows, cells aligned to them."""
    names = sorted({name for row in rows for name in row.cells})
    grid = [
        {
            "sha": row.sha,
            "time": iso(row.time),
            "commitUrl": f"https://github.com/pytorch/pytorch/commit/{row.sha}",
            "commitTitle": row.title,
            "commitMessageBody": f"{row.title}\n\nSummary.",
            "author": row.author,
            "authorUrl": f"https://github.com/{row.author}",
            "prNum": row.pr_num,
            "diffNum": None,
            "isForcedMerge": False,
            "jobs": [dict(row.cells.get(name, {})) for name in names],
        }
        for row in rows
    ]
    return {"shaGrid": grid, "jobNames": names}
