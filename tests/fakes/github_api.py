"""A fake GitHub REST API on 127.0.0.1: commits, workflow runs, jobs, logs, reruns, dispatches.

It behaves like GitHub where a client can get it wrong: ``Link`` pagination, ``ETag``
with ``304`` (free of rate limit), primary and secondary rate limits, 5xx, slow
answers, a non-idempotent ``workflow_dispatch`` that can fail after starting a run, job
logs behind a redirect to a blob store (``Range`` honoured, expired logs 404), and job
reruns that start a new attempt (refused while the run is running again).
Also holds ``FakeHttpService``, the threaded server base the other HTTP fakes share.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple, Self
from urllib.parse import parse_qs, urlencode, urlsplit

JsonDict = dict[str, Any]
BASE_TIME = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)
SECONDARY_RATE_LIMIT = "You have exceeded a secondary rate limit"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as a fake received it; header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class Reply(NamedTuple):
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = {}


def json_reply(status: int, data: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(
        status,
        json.dumps(data).encode(),
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
    )


@dataclass(slots=True)
class Fault:
    """An injected answer for the next ``times`` requests under ``path_prefix``.

    ``status=None`` answers normally after ``delay``: that is how a slow server looks.
    """

    path_prefix: str
    status: int | None
    headers: Mapping[str, str]
    body: Any
    delay: float = 0.0
    times: int = 1
    method: str | None = None


class FakeHttpService:
    """A real HTTP server on 127.0.0.1 (port 0) in a daemon thread, recording every request.

    Subclasses implement ``handle``. Tests wait on ``wait_for`` (a condition variable
    notified on every request), never on sleeps.
    """

    name = "fake-http"

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.RLock())
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.delay = 0.0  # seconds before every answer, to provoke client timeouts

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> Self:
        service = self

        class Handler(_Handler):
            owner = service

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, name=self.name, kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # cuts injected delays short
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # --- observing ------------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` holds (re-checked after every request) or time out."""
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        with self._cond:
            return [
                r
                for r in self.requests
                if r.path.startswith(path_prefix) and (method is None or r.method == method)
            ]

    # --- fault injection ------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str = "/",
        status: int = 500,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        times: int = 1,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` instead."""
        with self._cond:
            self._faults.append(
                Fault(path_prefix, status, dict(headers or {}), body, delay, times, method)
            )

    def delay_next(
        self, path_prefix: str, seconds: float, *, times: int = 1, method: str | None = None
    ) -> None:
        """Answer the next ``times`` matching requests normally, but only after ``seconds``."""
        with self._cond:
            self._faults.append(Fault(path_prefix, None, {}, None, seconds, times, method))

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        with self._cond:
            for fault in self._faults:
                if request.path.startswith(fault.path_prefix) and fault.method in (
                    None,
                    request.method,
                ):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # --- request flow ---------------------------------------------------------------

    def _dispatch(self, request: RecordedRequest) -> Reply:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
        fault = self._take_fault(request)
        pause = self.delay + (fault.delay if fault else 0.0)
        if pause:
            self._stopping.wait(pause)
        if fault is not None and fault.status is not None:
            reply = self.fault_reply(request, fault)
        else:
            reply = self.handle(request)
        with self._cond:
            self._cond.notify_all()  # state changed by the handler is now visible
        return reply

    def fault_reply(self, request: RecordedRequest, fault: Fault) -> Reply:
        body = fault.body if fault.body is not None else {"message": "Injected failure"}
        return json_reply(fault.status or 500, body, fault.headers)

    def handle(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHttpService

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query={k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self.rfile.read(length) if length else b"",
        )
        reply = self.owner._dispatch(request)
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            has_body = reply.status not in (204, 304) and self.command != "HEAD"
            self.send_header("Content-Length", str(len(reply.body) if has_body else 0))
            self.end_headers()
            if has_body:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to answer

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging; tests read ``requests`` instead."""


# --- the GitHub world ------------------------------------------------------------------


@dataclass(slots=True)
class FakeCommit:
    sha: str
    message: str = "A commit"
    author: str = "alice"
    date: datetime = BASE_TIME
    files: tuple[str, ...] = ()  # what GET /commits/{sha} lists


@dataclass(slots=True)
class FakeRun:
    """A workflow run. ``hidden_for_lists`` list calls pass before it shows up (GitHub lag)."""

    id: int
    repo: str
    workflow_id: int
    path: str
    name: str
    head_sha: str
    head_branch: str | None
    event: str = "push"
    status: str = "completed"
    conclusion: str | None = "success"
    run_attempt: int = 1
    created_at: datetime = BASE_TIME
    inputs: Mapping[str, Any] = field(default_factory=dict)
    hidden_for_lists: int = 0
    display_title: str = ""  # the workflow's run-name; GitHub shows the name when there is none


@dataclass(slots=True)
class FakeJob:
    id: int
    run_id: int
    name: str
    status: str = "completed"
    conclusion: str | None = "success"
    run_attempt: int = 1
    started_at: datetime | None = BASE_TIME
    completed_at: datetime | None = BASE_TIME + timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Dispatch:
    repo: str
    workflow: str
    ref: str
    inputs: Mapping[str, Any]
    run_id: int


_FAILED = frozenset({"failure", "timed_out", "startup_failure"})
_TRUNK_TAG = re.compile(r"^trunk/([0-9a-f]{7,40})$")
_HEX_SHA = re.compile(r"^[0-9a-f]{40}$")
_REPO = r"/repos/(?P<repo>[^/]+/[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(_REPO + r"/commits$"), "_commits"),
    ("GET", re.compile(_REPO + r"/commits/(?P<sha>[^/]+)$"), "_commit"),
    ("GET", re.compile(_REPO + r"/actions/runs$"), "_runs"),
    ("GET", re.compile(_REPO + r"/actions/workflows/(?P<workflow>[^/]+)/runs$"), "_runs"),
    ("GET", re.compile(_REPO + r"/actions/runs/(?P<run_id>\d+)$"), "_run"),
    ("GET", re.compile(_REPO + r"/actions/runs/(?P<run_id>\d+)/jobs$"), "_jobs"),
    ("GET", re.compile(_REPO + r"/actions/jobs/(?P<job_id>\d+)/logs$"), "_logs"),
    ("POST", re.compile(_REPO + r"/actions/jobs/(?P<job_id>\d+)/rerun$"), "_rerun_job"),
    ("POST", re.compile(_REPO + r"/actions/runs/(?P<run_id>\d+)/rerun-failed-jobs$"),
     "_rerun_failed_jobs"),
    (
        "POST",
        re.compile(_REPO + r"/actions/workflows/(?P<workflow>[^/]+)/dispatches$"),
        "_dispatch_workflow",
    ),
    ("GET", re.compile(r"/_logs/(?P<job_id>\d+)\.txt$"), "_log_blob"),
]


class FakeGitHub(FakeHttpService):
    """GitHub's REST API, as much of it as the bot uses, over a world tests configure.

    With ``token`` set, requests need ``Authorization: Bearer <token>`` (or ``token``).
    Every GET answer carries an ``ETag``; a matching ``If-None-Match`` gets ``304``,
    which, as on GitHub, does not use up rate limit.
    """

    name = "fake-github"

    def __init__(self, token: str | None = None, rate_limit: int = 5000) -> None:
        super().__init__()
        self.token = token
        self.rate_limit = rate_limit
        self.rate_remaining = rate_limit
        self.rate_reset = time.time() + 3600
        self.commits: dict[tuple[str, str], list[FakeCommit]] = {}
        self.workflows: dict[str, dict[str, tuple[int, str]]] = {}  # repo -> path -> (id, name)
        self.runs: dict[int, FakeRun] = {}
        self.jobs: dict[int, FakeJob] = {}
        self.logs: dict[int, str] = {}
        self.expired_logs: set[int] = set()  # jobs whose log GitHub no longer keeps: 404
        self.blob_ranges = True  # the blob store honours Range: bytes=-N (206)
        self.reruns: list[tuple[int, int]] = []  # (job rerun, the new attempt's job id)
        self.rerun_fail_status: int | None = None  # answer this *after* starting the rerun
        self.rerun_fail_times = 0
        self.dispatches: list[Dispatch] = []
        self.dispatch_fail_status: int | None = None  # answer this *after* creating the run
        self.dispatch_fail_times = 0
        self.dispatched_run_hidden_for = 0  # list calls before a dispatched run appears
        # a workflow's ``run-name``: the title of a dispatched run, from its inputs
        self.dispatch_run_name: Callable[[Mapping[str, Any]], str] | None = None
        self._ids = itertools.count(1000)

    # --- building the world ---------------------------------------------------------

    def set_commits(self, repo: str, branch: str, commits: Sequence[FakeCommit | str]) -> None:
        """Replace a branch's history; ``commits`` are newest first (plain shas allowed)."""
        with self._cond:
            self.commits[(repo, branch)] = [
                c if isinstance(c, FakeCommit) else FakeCommit(c) for c in commits
            ]

    def push_commit(self, repo: str, branch: str, commit: FakeCommit | str) -> None:
        """Land one commit on top of the branch."""
        with self._cond:
            history = self.commits.setdefault((repo, branch), [])
            history.insert(0, commit if isinstance(commit, FakeCommit) else FakeCommit(commit))

    def add_workflow(self, repo: str, path: str, name: str | None = None) -> int:
        """Register a workflow file (``.github/workflows/trunk.yml``); returns its id."""
        with self._cond:
            known = self.workflows.setdefault(repo, {})
            if path not in known:
                stem = path.rsplit("/", 1)[-1].split(".", 1)[0]
                known[path] = (next(self._ids), name or stem)
            return known[path][0]

    def add_run(
        self,
        repo: str,
        head_sha: str,
        *,
        path: str = ".github/workflows/trunk.yml",
        name: str | None = None,
        head_branch: str | None = "main",
        event: str = "push",
        status: str = "completed",
        conclusion: str | None = "success",
        run_attempt: int = 1,
        created_at: datetime = BASE_TIME,
        inputs: Mapping[str, Any] | None = None,
        hidden_for_lists: int = 0,
    ) -> FakeRun:
        with self._cond:
            workflow_id = self.add_workflow(repo, path, name)
            run = FakeRun(
                id=next(self._ids),
                repo=repo,
                workflow_id=workflow_id,
                path=path,
                name=self.workflows[repo][path][1],
                head_sha=head_sha,
                head_branch=head_branch,
                event=event,
                status=status,
                conclusion=conclusion,
                run_attempt=run_attempt,
                created_at=created_at,
                inputs=dict(inputs or {}),
                hidden_for_lists=hidden_for_lists,
            )
            self.runs[run.id] = run
            return run

    def add_job(
        self,
        run: FakeRun,
        name: str,
        *,
        status: str = "completed",
        conclusion: str | None = "success",
        attempt: int = 1,
        started_at: datetime | None = BASE_TIME,
        completed_at: datetime | None = BASE_TIME + timedelta(hours=1),
        log: str | None = None,
    ) -> FakeJob:
        """Add one job attempt; a higher ``attempt`` makes it the run's latest attempt."""
        with self._cond:
            job = FakeJob(
                next(self._ids), run.id, name, status, conclusion, attempt, started_at, completed_at
            )
            self.jobs[job.id] = job
            run.run_attempt = max(run.run_attempt, attempt)
            if log is not None:
                self.logs[job.id] = log
            return job

    def exhaust_rate_limit(self, reset_in: float = 60.0) -> None:
        """Use up the primary rate limit; it refills ``reset_in`` seconds from now."""
        with self._cond:
            self.rate_remaining = 0
            self.rate_reset = time.time() + reset_in

    def fail_dispatch_after_creating_run(self, status: int = 502, times: int = 1) -> None:
        """The next dispatches start their run and still answer ``status``: not idempotent."""
        with self._cond:
            self.dispatch_fail_status = status
            self.dispatch_fail_times = times

    def fail_next(
        self,
        path_prefix: str = "/",
        status: int = 403,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        times: int = 1,
        method: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Defaults to GitHub's secondary rate limit: 403 with ``Retry-After: 1``."""
        if headers is None:
            headers = {"Retry-After": "1"} if status in (403, 429) else {}
        if body is None:
            body = {"message": SECONDARY_RATE_LIMIT if status in (403, 429) else "Server Error"}
        super().fail_next(
            path_prefix, status, headers, body, times=times, method=method, delay=delay
        )

    # --- serving --------------------------------------------------------------------

    def _rate_headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(self.rate_remaining, 0)),
            "X-RateLimit-Reset": str(math.ceil(self.rate_reset)),
            "X-RateLimit-Used": str(self.rate_limit - max(self.rate_remaining, 0)),
        }

    def fault_reply(self, request: RecordedRequest, fault: Fault) -> Reply:
        reply = super().fault_reply(request, fault)
        with self._cond:
            return reply._replace(headers={**self._rate_headers(), **reply.headers})

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path.startswith("/_logs/"):
            return self._route(request)  # the log blob store: no auth, no rate limit
        with self._cond:
            if self.token is not None and not self._authorized(request):
                return json_reply(401, {"message": "Bad credentials"}, self._rate_headers())
            if time.time() >= self.rate_reset:
                self.rate_remaining, self.rate_reset = self.rate_limit, time.time() + 3600
            if self.rate_remaining <= 0:
                return json_reply(
                    403,
                    {"message": "API rate limit exceeded for installation."},
                    self._rate_headers(),
                )
            reply = self._route(request)
            if request.method == "GET" and reply.status == 200:
                etag = 'W/"' + hashlib.sha1(reply.body).hexdigest() + '"'
                if etag in _etags(request.headers.get("if-none-match", "")):
                    return Reply(304, b"", {"ETag": etag, **self._rate_headers()})
                reply = reply._replace(headers={**reply.headers, "ETag": etag})
            self.rate_remaining -= 1
            return reply._replace(headers={**self._rate_headers(), **reply.headers})

    def _authorized(self, request: RecordedRequest) -> bool:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() in ("bearer", "token") and credential.strip() == self.token

    def _route(self, request: RecordedRequest) -> Reply:
        for method, pattern, handler_name in _ROUTES:
            match = pattern.match(request.path)
            if match and request.method == method:
                handler: Callable[..., Reply] = getattr(self, handler_name)
                return handler(request, **match.groupdict())
        return json_reply(404, {"message": "Not Found"})

    def _paginate(self, request: RecordedRequest, items: Sequence[Any]) -> tuple[list[Any], str]:
        """One page of ``items`` and the RFC 5988 ``Link`` header pointing at the others."""
        per_page = min(max(_int(request.query.get("per_page"), 30), 1), 100)
        page = max(_int(request.query.get("page"), 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)

        def link(number: int, rel: str) -> str:
            query = {**request.query, "per_page": str(per_page), "page": str(number)}
            return f'<{self.url}{request.path}?{urlencode(query)}>; rel="{rel}"'

        links = []
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(min(page - 1, last), "prev")]
        return list(items[(page - 1) * per_page : page * per_page]), ", ".join(links)

    def _paged_reply(self, request: RecordedRequest, data: JsonDict, key: str) -> Reply:
        items, link = self._paginate(request, data[key])
        return json_reply(200, {**data, key: items}, {"Link": link} if link else {})

    def _commits(self, request: RecordedRequest, repo: str) -> Reply:
        ref = request.query.get("sha") or "main"
        history = self.commits.get((repo, ref))
        if history is None:
            history = next(
                (
                    h[i:]
                    for (r, _), h in self.commits.items()
                    if r == repo
                    for i, c in enumerate(h)
                    if c.sha == ref
                ),
                None,
            )
        if history is None:
            return json_reply(422, {"message": f"No commit found for SHA: {ref}"})
        rendered = [
            self._commit_json(repo, c, history[i + 1] if i + 1 < len(history) else None)
            for i, c in enumerate(history)
        ]
        items, link = self._paginate(request, rendered)
        return json_reply(200, items, {"Link": link} if link else {})

    def _commit_json(self, repo: str, c: FakeCommit, parent: FakeCommit | None) -> JsonDict:
        person = {"name": c.author, "email": f"{c.author}@example.com", "date": iso(c.date)}
        return {
            "sha": c.sha,
            "commit": {"message": c.message, "author": person, "committer": person},
            "author": {"login": c.author},
            "committer": {"login": c.author},
            "html_url": f"https://github.com/{repo}/commit/{c.sha}",
            "url": f"{self.url}/repos/{repo}/commits/{c.sha}",
            "parents": [{"sha": parent.sha}] if parent else [],
        }

    def _commit(self, request: RecordedRequest, repo: str, sha: str) -> Reply:
        for (r, _), history in self.commits.items():
            for i, c in enumerate(history):
                if r == repo and c.sha.startswith(sha) and len(sha) >= 7:
                    parent = history[i + 1] if i + 1 < len(history) else None
                    files = [{"filename": f, "status": "modified", "additions": 1,
                              "deletions": 1, "changes": 2} for f in c.files]
                    return json_reply(200, {**self._commit_json(repo, c, parent),
                                            "files": files})
        return json_reply(422, {"message": f"No commit found for SHA: {sha}"})

    def _workflow_path(self, repo: str, workflow: str) -> str | None:
        for path, (workflow_id, _) in self.workflows.get(repo, {}).items():
            if workflow in (str(workflow_id), path, path.rsplit("/", 1)[-1]):
                return path
        return None

    def _runs(self, request: RecordedRequest, repo: str, workflow: str | None = None) -> Reply:
        path = None
        if workflow is not None:
            path = self._workflow_path(repo, workflow)
            if path is None:
                return json_reply(404, {"message": "Not Found"})
        wanted = {k: request.query.get(k) for k in ("branch", "event", "status", "head_sha")}
        visible = []
        for run in self.runs.values():
            if run.repo != repo or (path is not None and run.path != path):
                continue
            if run.hidden_for_lists > 0:
                run.hidden_for_lists -= 1
                continue
            if wanted["branch"] and run.head_branch != wanted["branch"]:
                continue
            if wanted["event"] and run.event != wanted["event"]:
                continue
            if wanted["status"] and wanted["status"] not in (run.status, run.conclusion):
                continue
            if wanted["head_sha"] and run.head_sha != wanted["head_sha"]:
                continue
            visible.append(run)
        visible.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        data = {"total_count": len(visible), "workflow_runs": [self._run_json(r) for r in visible]}
        return self._paged_reply(request, data, "workflow_runs")

    def _run_json(self, run: FakeRun) -> JsonDict:
        api = f"{self.url}/repos/{run.repo}/actions/runs/{run.id}"
        return {
            "id": run.id,
            "name": run.name,
            "workflow_id": run.workflow_id,
            "path": run.path,
            "head_sha": run.head_sha,
            "head_branch": run.head_branch,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "display_title": run.display_title or run.name,
            "run_attempt": run.run_attempt,
            "created_at": iso(run.created_at),
            "updated_at": iso(run.created_at),
            "html_url": f"https://github.com/{run.repo}/actions/runs/{run.id}",
            "url": api,
            "jobs_url": f"{api}/jobs",
            "repository": {"full_name": run.repo},
        }

    def _run(self, request: RecordedRequest, repo: str, run_id: str) -> Reply:
        run = self.runs.get(int(run_id))
        if run is None or run.repo != repo:
            return json_reply(404, {"message": "Not Found"})
        return json_reply(200, self._run_json(run))

    def _jobs(self, request: RecordedRequest, repo: str, run_id: str) -> Reply:
        run = self.runs.get(int(run_id))
        if run is None or run.repo != repo:
            return json_reply(404, {"message": "Not Found"})
        latest_only = request.query.get("filter", "latest") != "all"
        jobs = sorted(
            (
                j
                for j in self.jobs.values()
                if j.run_id == run.id and (not latest_only or j.run_attempt == run.run_attempt)
            ),
            key=lambda j: j.id,
        )
        data = {"total_count": len(jobs), "jobs": [self._job_json(run, j) for j in jobs]}
        return self._paged_reply(request, data, "jobs")

    def _job_json(self, run: FakeRun, job: FakeJob) -> JsonDict:
        return {
            "id": job.id,
            "run_id": run.id,
            "run_attempt": job.run_attempt,
            "run_url": f"{self.url}/repos/{run.repo}/actions/runs/{run.id}",
            "head_sha": run.head_sha,
            "head_branch": run.head_branch,
            "workflow_name": run.name,
            "name": job.name,
            "status": job.status,
            "conclusion": job.conclusion,
            "created_at": iso(job.started_at or run.created_at),
            "started_at": iso(job.started_at) if job.started_at else None,
            "completed_at": iso(job.completed_at) if job.completed_at else None,
            "html_url": f"https://github.com/{run.repo}/actions/runs/{run.id}/job/{job.id}",
            "url": f"{self.url}/repos/{run.repo}/actions/jobs/{job.id}",
            "labels": ["linux.g5.4xlarge.nvidia.gpu"],
            "steps": [],
        }

    def _logs(self, request: RecordedRequest, repo: str, job_id: str) -> Reply:
        job = self.jobs.get(int(job_id))
        if job is None or self.runs[job.run_id].repo != repo or job.id in self.expired_logs:
            return json_reply(404, {"message": "Not Found"})
        signed = f"sig={hashlib.sha1(str(job.id).encode()).hexdigest()}"  # like a SAS token
        return Reply(302, b"", {"Location": f"{self.url}/_logs/{job.id}.txt?{signed}"})

    def _log_blob(self, request: RecordedRequest, job_id: str) -> Reply:
        with self._cond:
            text = self.logs.get(int(job_id))
        if text is None:
            return Reply(404, b"no such log", {"Content-Type": "text/plain"})
        data = text.encode()
        headers = {"Content-Type": "text/plain; charset=utf-8", "Accept-Ranges": "bytes"}
        wanted = re.match(r"^bytes=-(\d+)$", request.headers.get("range", ""))
        if self.blob_ranges and wanted:
            if not data:
                return Reply(416, b"", {"Content-Range": "bytes */0"})
            part = data[-int(wanted.group(1)):]
            start = len(data) - len(part)
            return Reply(206, part, {**headers,
                                     "Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"})
        return Reply(200, data, headers)

    # --- reruns -----------------------------------------------------------------------

    def _rerun_job(self, request: RecordedRequest, repo: str, job_id: str) -> Reply:
        job = self.jobs.get(int(job_id))
        if job is None or self.runs[job.run_id].repo != repo:
            return json_reply(404, {"message": "Not Found"})
        return self._start_rerun(self.runs[job.run_id], [job])

    def _rerun_failed_jobs(self, request: RecordedRequest, repo: str, run_id: str) -> Reply:
        run = self.runs.get(int(run_id))
        if run is None or run.repo != repo:
            return json_reply(404, {"message": "Not Found"})
        failed = [j for j in self.jobs.values() if j.run_id == run.id
                  and j.run_attempt == run.run_attempt and j.conclusion in _FAILED]
        if not failed:
            return json_reply(403, {"message": "This workflow run has no failed jobs"})
        return self._start_rerun(run, failed)

    def _start_rerun(self, run: FakeRun, jobs: list[FakeJob]) -> Reply:
        """A new attempt of the run with these jobs queued again; GitHub refuses a rerun
        while any job of the run is still queued or running."""
        if any(j.status != "completed" for j in self.jobs.values() if j.run_id == run.id):
            return json_reply(403, {"message": "This workflow is already running"})
        run.run_attempt += 1
        run.status, run.conclusion = "queued", None
        for old in jobs:
            new = FakeJob(next(self._ids), run.id, old.name, "queued", None, run.run_attempt,
                          None, None)
            self.jobs[new.id] = new
            self.reruns.append((old.id, new.id))
        if self.rerun_fail_status is not None and self.rerun_fail_times > 0:
            self.rerun_fail_times -= 1
            return json_reply(self.rerun_fail_status, {"message": "Server Error"})
        return Reply(201, b"{}", {"Content-Type": "application/json"})

    def finish_job(self, job_id: int, conclusion: str, *, log: str | None = None) -> FakeJob:
        """A queued rerun ends: completed with ``conclusion``; its run completes with it."""
        with self._cond:
            job = self.jobs[job_id]
            job.status, job.conclusion = "completed", conclusion
            job.started_at = job.started_at or BASE_TIME
            job.completed_at = job.started_at + timedelta(hours=1)
            if log is not None:
                self.logs[job.id] = log
            run = self.runs[job.run_id]
            if all(j.status == "completed" for j in self.jobs.values() if j.run_id == run.id):
                latest = [j for j in self.jobs.values()
                          if j.run_id == run.id and j.run_attempt == run.run_attempt]
                run.status = "completed"
                run.conclusion = ("failure" if any(j.conclusion in _FAILED for j in latest)
                                  else "success")
            self._cond.notify_all()
            return job

    def job_json(self, job_id: int) -> JsonDict:
        """The job as the REST API (and a ``workflow_job`` webhook) shows it."""
        with self._cond:
            job = self.jobs[job_id]
            return self._job_json(self.runs[job.run_id], job)

    def _dispatch_workflow(self, request: RecordedRequest, repo: str, workflow: str) -> Reply:
        path = self._workflow_path(repo, workflow)
        if path is None:
            return json_reply(404, {"message": "Not Found"})
        try:
            body = request.json()
        except ValueError:
            return json_reply(400, {"message": "Problems parsing JSON"})
        if not isinstance(body, dict) or not isinstance(body.get("ref"), str):
            return json_reply(422, {"message": 'Invalid request.\n\n"ref" wasn\'t supplied.'})
        inputs = body.get("inputs") or {}
        if not isinstance(inputs, dict) or len(inputs) > 10:
            return json_reply(422, {"message": "inputs: at most 10 properties are allowed"})
        ref: str = body["ref"]
        run = self.add_run(
            repo,
            self._resolve(repo, ref),
            path=path,
            head_branch=ref,
            event="workflow_dispatch",
            status="queued",
            conclusion=None,
            created_at=datetime.now(UTC),
            inputs=inputs,
            hidden_for_lists=self.dispatched_run_hidden_for,
        )
        if self.dispatch_run_name is not None:
            run.display_title = self.dispatch_run_name(inputs)
        self.dispatches.append(Dispatch(repo, workflow, ref, dict(inputs), run.id))
        if self.dispatch_fail_status is not None and self.dispatch_fail_times > 0:
            self.dispatch_fail_times -= 1
            return json_reply(self.dispatch_fail_status, {"message": "Server Error"})
        return Reply(204)

    def _resolve(self, repo: str, ref: str) -> str:
        """The commit a ref names: ``trunk/{sha}`` tags, branch heads, or a full sha."""
        tag = _TRUNK_TAG.match(ref)
        if tag:
            return tag.group(1)
        history = self.commits.get((repo, ref.removeprefix("refs/heads/")))
        if history:
            return history[0].sha
        return ref if _HEX_SHA.match(ref) else "0" * 40


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _etags(header: str) -> set[str]:
    return {tag.strip() for tag in header.split(",") if tag.strip()}
