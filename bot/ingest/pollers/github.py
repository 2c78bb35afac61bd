"""The GitHub Actions poller: trunk order from the commits API, results from workflow runs' jobs.

Each tick, per watched repo/branch: read the branch's new commits (newest first, until
a known one), then list recent workflow runs of matching workflows and read the jobs
(``filter=all``: every attempt) of runs that are new, changed or unfinished. Every
unit of work commits its data and its cursor or ETag together, so a tick that fails
half-way re-reads the rest next time and nothing is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import sqlite_utils

from bot.domain.model import Commit
from bot.domain.payload import PayloadError, checked, field_of, optional_field, parse_timestamp
from bot.domain.route import Route
from bot.github import rest as github_rest
from bot.github.jobs import job_from_api
from bot.github.rest import ApiRateLimited, ApiUnavailable
from bot.ingest.github_payloads import pr_number_from_message
from bot.ingest.pollers.tick import PollReport, run_tick
from bot.store import history
from bot.store import pollers as poller_store
from bot.store.codec import from_iso, to_iso

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

NAME = "github-poller"
PER_PAGE = 100
MAX_LIST_PAGES = 10  # workflow-run pages per tick: bounds the cost of a long outage
MAX_CATCHUP_COMMITS = 1000  # after that many unknown commits, place them without an anchor
# Reruns keep their run's creation time; runs created this long before the newest one
# are still listed each tick so that a rerun of them is seen.
RERUN_WINDOW = timedelta(hours=6)
UNFINISHED_LOOKBACK = timedelta(days=3)  # stop following runs stuck "in progress"
MIN_REMAINING = 5  # stop a tick when the token has fewer requests left than this


@dataclass(frozen=True, slots=True)
class Page:
    data: Any
    etag: str | None
    next_url: str | None
    not_modified: bool = False
    missing: bool = False


@dataclass(frozen=True, slots=True)
class RunRef:
    """A workflow run as far as deciding whether to read its jobs goes."""

    run_id: int
    workflow: str
    head_sha: str
    version: str
    completed: bool
    created_at: datetime | None


class GitHubRest:
    """GET with ETags, ``Link`` pagination and rate-limit handling, counting into a report."""

    def __init__(self, client: httpx.Client, bot: Bot, report: PollReport) -> None:
        self.client = client
        self.bot = bot
        self.report = report
        self.exhausted: ApiRateLimited | None = None

    def page(self, url: str, params: dict[str, Any] | None = None, etag: str | None = None,
             allow_missing: bool = False) -> Page:
        if self.exhausted is not None:
            raise self.exhausted
        headers = {"If-None-Match": etag} if etag else {}
        response = github_rest.get(self.client, url, params=params, headers=headers)
        self.report.requests += 1
        now = self.bot.clock()
        if allow_missing and response.status_code in (404, 410):
            return Page(None, None, None, missing=True)
        github_rest.refuse(response, now)
        self._watch_remaining(response, now)
        if response.status_code == 304:
            self.report.not_modified += 1
            return Page(None, etag, None, not_modified=True)
        try:
            data = response.json()
        except ValueError:
            raise ApiUnavailable(
                f"GET {url} answered {response.status_code} without JSON") from None
        return Page(data, response.headers.get("etag"), github_rest.next_url(response))

    def _watch_remaining(self, response: httpx.Response, now: datetime) -> None:
        """Stop before the limit, not at it: the token may be shared with other tools."""
        remaining = response.headers.get("x-ratelimit-remaining", "")
        if not remaining.isdigit() or int(remaining) > MIN_REMAINING:
            return
        self.exhausted = ApiRateLimited(github_rest.reset_time(response, now),
                                        f"only {remaining} GitHub API requests left until reset")


def commit_from_api(item: Any, path: str) -> Commit:
    """One item of ``GET /repos/{o}/{r}/commits`` as a commit (the committer date is landing)."""
    item = checked(item, dict, path)
    git = optional_field(item, "commit", dict, f"{path}.commit") or {}
    message = optional_field(git, "message", str, f"{path}.commit.message") or ""
    user = optional_field(item, "author", dict, f"{path}.author") or {}
    git_author = optional_field(git, "author", dict, f"{path}.commit.author") or {}
    committer = optional_field(git, "committer", dict, f"{path}.commit.committer") or {}
    return Commit(
        sha=field_of(item, "sha", str, f"{path}.sha"),
        title=message.split("\n", 1)[0].strip(),
        author=(optional_field(user, "login", str, f"{path}.author.login")
                or optional_field(git_author, "name", str, f"{path}.commit.author.name") or ""),
        pr_number=pr_number_from_message(message),
        time=parse_timestamp(committer.get("date") or git_author.get("date"),
                             f"{path}.commit.committer.date"),
        url=optional_field(item, "html_url", str, f"{path}.html_url"),
    )


def _run_ref(run: Any, path: str) -> RunRef:
    run = checked(run, dict, path)
    status = optional_field(run, "status", str, f"{path}.status") or ""
    version = "|".join(str(run.get(k)) for k in ("updated_at", "run_attempt", "status",
                                                  "conclusion"))
    return RunRef(
        run_id=field_of(run, "id", int, f"{path}.id"),
        workflow=optional_field(run, "name", str, f"{path}.name") or "",
        head_sha=field_of(run, "head_sha", str, f"{path}.head_sha"),
        version=version,
        completed=status == "completed",
        created_at=parse_timestamp(run.get("created_at"), f"{path}.created_at"),
    )


class GitHubPoller:
    """Polls GitHub's REST API (``GITHUB_API_URL``) with ``GITHUB_TOKEN`` for every route."""

    def __init__(self, bot: Bot, timeout: float = 10.0, per_page: int = PER_PAGE) -> None:
        self.bot = bot
        self.timeout = timeout
        self.per_page = per_page

    def targets(self) -> list[tuple[str, str, tuple[Route, ...]]]:
        by_branch: dict[tuple[str, str], list[Route]] = {}
        for route in self.bot.ingestor.routes:
            by_branch.setdefault((route.repo, route.branch), []).append(route)
        return [(repo, branch, tuple(rs)) for (repo, branch), rs in by_branch.items()]

    def poll_once(self) -> PollReport:
        return run_tick(self.bot, NAME, self._tick)

    def _tick(self, report: PollReport) -> None:
        settings = self.bot.settings
        with github_rest.client(settings.github_api_url, settings.github_token,
                         timeout=self.timeout) as client:
            rest = GitHubRest(client, self.bot, report)
            for repo, branch, routes in self.targets():
                try:
                    self._commits(rest, repo, branch, report)
                    self._runs(rest, repo, branch, routes, report)
                except PayloadError as exc:
                    raise ApiUnavailable(f"unexpected GitHub answer for {repo}: {exc}") from None

    # --- trunk order ----------------------------------------------------------------------

    def _commits(self, rest: GitHubRest, repo: str, branch: str, report: PollReport) -> None:
        """New commits of the branch, newest first until a known one, placed oldest first."""
        name = f"{NAME}:commits:{repo}@{branch}"
        db = self.bot.store.db
        state = poller_store.load(db, name)
        first = rest.page(f"/repos/{repo}/commits", {"sha": branch, "per_page": self.per_page},
                          etag=state.etags.get("head"))
        if first.not_modified:
            return
        limit = (self.bot.settings.github_backfill_commits if state.cursor is None
                 else MAX_CATCHUP_COMMITS)
        newest_first: list[Commit] = []
        anchored = False
        page = first
        while True:
            report.pages += 1
            items = checked(page.data, list, "commits")
            batch = [commit_from_api(item, f"commits[{i}]") for i, item in enumerate(items)]
            known = history.commit_positions(db, repo, branch, [c.sha for c in batch])
            for commit in batch:
                newest_first.append(commit)
                if commit.sha in known:
                    anchored = True
                    break
                if len(newest_first) >= limit:
                    break
            if anchored or len(newest_first) >= limit or page.next_url is None:
                break
            page = rest.page(page.next_url)
        if not anchored and state.cursor is not None and newest_first:
            log.warning("%s@%s: %d new commits without reaching a known one; older ones are "
                        "not fetched and the batch is placed at the head", repo, branch,
                        len(newest_first))
        now = self.bot.clock()
        with self.bot.store.transaction() as db:
            report.add(self.bot.ingestor.commits(repo, branch, newest_first[::-1]))
            if newest_first:
                poller_store.save_cursor(db, name, newest_first[0].sha, now)
            poller_store.save_etag(db, name, "head", first.etag, now)

    # --- results --------------------------------------------------------------------------

    def _horizon(self, db: sqlite_utils.Database, repo: str, branch: str, cursor: str | None,
                 routes: Sequence[Route], now: datetime) -> datetime:
        """How far back to list runs: the rerun window, unfinished runs, or the back-fill."""
        newest = from_iso(cursor)
        if newest is not None:
            horizon = newest - RERUN_WINDOW
        else:
            oldest = history.oldest_time_of_newest(db, repo, branch,
                                                   self.bot.settings.github_backfill_commits)
            horizon = oldest if oldest is not None else now - max(
                (r.max_age for r in routes), default=timedelta(hours=24))
        unfinished = poller_store.oldest_unfinished_run(db, repo)
        if unfinished is not None:
            horizon = min(horizon, max(unfinished, now - UNFINISHED_LOOKBACK))
        return horizon

    def _runs(self, rest: GitHubRest, repo: str, branch: str, routes: Sequence[Route],
              report: PollReport) -> None:
        name = f"{NAME}:runs:{repo}@{branch}"
        db = self.bot.store.db
        state = poller_store.load(db, name)
        now = self.bot.clock()
        horizon = self._horizon(db, repo, branch, state.cursor, routes, now)
        first = rest.page(f"/repos/{repo}/actions/runs",
                          {"branch": branch, "per_page": self.per_page},
                          etag=state.etags.get("list"))
        listed: dict[int, RunRef] = {}
        newest = from_iso(state.cursor)
        page, pages = first, 1
        while not page.not_modified:
            report.pages += 1
            data = checked(page.data, dict, "runs")
            oldest: datetime | None = None
            for i, raw in enumerate(field_of(data, "workflow_runs", list, "workflow_runs")):
                run = _run_ref(raw, f"workflow_runs[{i}]")
                if run.created_at is not None:
                    oldest = run.created_at if oldest is None else min(oldest, run.created_at)
                    newest = run.created_at if newest is None else max(newest, run.created_at)
                recent = run.created_at is None or run.created_at >= horizon
                if recent and any(r.watches_job(run.workflow, "") for r in routes):
                    listed.setdefault(run.run_id, run)
            if (page.next_url is None or pages >= MAX_LIST_PAGES
                    or (oldest is not None and oldest < horizon)):
                break
            page, pages = rest.page(page.next_url), pages + 1
        for run in listed.values():
            seen = poller_store.seen_run(db, repo, run.run_id)
            if seen is None or seen.version != run.version or not seen.completed:
                self._jobs(rest, repo, run, seen, report)
        for run in self._unfinished(db, repo, now):
            if run.run_id not in listed:  # not listed this tick: its jobs may still move
                self._jobs(rest, repo, run, poller_store.seen_run(db, repo, run.run_id), report)
        with self.bot.store.transaction() as db:
            poller_store.save_etag(db, name, "list", first.etag, now)
            if newest is not None:
                poller_store.save_cursor(db, name, to_iso(newest), now)

    def _unfinished(self, db: sqlite_utils.Database, repo: str, now: datetime) -> list[RunRef]:
        return [RunRef(r.run_id, r.workflow, r.head_sha, r.version, False, r.created_at)
                for r in poller_store.unfinished_runs(db, repo, now - UNFINISHED_LOOKBACK)]

    def _jobs(self, rest: GitHubRest, repo: str, run: RunRef, seen: poller_store.SeenRun | None,
              report: PollReport) -> None:
        """Every attempt of every job of one run, stored with the run's new version."""
        url = f"/repos/{repo}/actions/runs/{run.run_id}/jobs"
        first = rest.page(url, {"filter": "all", "per_page": self.per_page},
                          etag=seen.jobs_etag if seen else None, allow_missing=True)
        completed, etag = run.completed, first.etag
        jobs: list[Any] = []
        if first.missing:
            completed, etag = True, None  # the run was deleted: stop following it
        elif not first.not_modified:
            page = first
            while True:
                report.pages += 1
                jobs += field_of(checked(page.data, dict, "jobs page"), "jobs", list, "jobs")
                if page.next_url is None:
                    break
                page = rest.page(page.next_url)
            if page is not first:
                etag = None  # a later page can change while the first does not
        unchanged = (seen is not None and first.not_modified and seen.version == run.version
                     and seen.completed == completed)
        report.runs_read += 1
        if unchanged:
            return
        results = [job_from_api(job, repo) for job in jobs]
        now = self.bot.clock()
        with self.bot.store.transaction() as db:
            report.add(self.bot.ingestor.results(results))
            poller_store.save_run(db, repo, run.run_id, workflow=run.workflow,
                                  head_sha=run.head_sha, version=run.version,
                                  completed=completed, jobs_etag=etag,
                                  created_at=run.created_at, now=now)
