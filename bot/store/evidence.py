"""Failure evidence in SQLite: each failed job's key lines, class and signature, the queue of
logs to read, and the files each commit touched.

Kept apart from ``job_results`` (keyed by the same ``(repo, job_id)``), so the result rows
can change shape without touching what the logs said.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlite_utils

from bot.domain.failure_classes import Classification, FailureClass
from bot.domain.failure_lines import FailureLines, KeyLine, LineKind, files_named
from bot.domain.model import JobResult
from bot.store.codec import from_iso, from_json_list, to_iso, to_json_list

WANTED, DONE, GONE, FAILED = "wanted", "done", "gone", "failed"
REPORTED, LOG = "reported", "log"  # where the lines came from: the source (HUD), or the log
MAX_ATTEMPTS = 6  # a log that cannot be read after this many tries is given up on


@dataclass(frozen=True, slots=True)
class StoredEvidence:
    """What is known about one failed job attempt.

    ``state``: ``wanted`` (its log is queued), ``done``, ``gone`` (expired or deleted),
    ``failed`` (given up after ``MAX_ATTEMPTS``). ``found``/``classification``/
    ``signature`` are set once ``done`` (or when the source reported lines).
    """

    repo: str
    job_id: int
    sha: str
    job_key: str
    job_name: str
    conclusion: str | None
    state: str
    source: str | None
    found: FailureLines
    classification: Classification | None
    signature: str | None
    last_error: str | None = None

    @property
    def known(self) -> bool:
        return self.classification is not None


@dataclass(frozen=True, slots=True)
class LogDue:
    """A failed job whose log the background reader should read now."""

    repo: str
    job_id: int
    sha: str
    job_key: str
    job_name: str
    conclusion: str | None
    attempts: int


# --- key lines as JSON ------------------------------------------------------------------------


def _lines_json(found: FailureLines) -> str:
    return json.dumps([{"kind": int(line.kind), "text": line.text, "test": line.test,
                        "file": line.file, "frames": list(line.frames)} for line in found.lines])


def _found(lines_json: str, tests_json: str, test_count: int, modules_json: str) -> FailureLines:
    lines: list[KeyLine] = []
    for raw in json.loads(lines_json or "[]"):
        lines.append(KeyLine(LineKind(raw["kind"]), raw["text"], raw.get("test"),
                             raw.get("file"), tuple(raw.get("frames") or ())))
    return FailureLines(tuple(lines), from_json_list(tests_json), test_count,
                        files_named(lines), from_json_list(modules_json))


_COLUMNS = ("repo, job_id, sha, job_key, job_name, conclusion, state, source, class, "
            "class_rule, class_line, class_hints, signature, lines_json, tests_json, "
            "test_count, modules_json, last_error")


def _evidence(row: Sequence[Any]) -> StoredEvidence:
    (repo, job_id, sha, key, name, conclusion, state, source, kind, rule, line, hints,
     signature, lines_json, tests_json, test_count, modules_json, last_error) = row
    classification = (Classification(FailureClass(kind), rule, line, from_json_list(hints))
                      if kind else None)
    return StoredEvidence(repo, job_id, sha, key, name, conclusion, state, source,
                          _found(lines_json, tests_json, test_count, modules_json),
                          classification, signature, last_error)


# --- writing ---------------------------------------------------------------------------------


def want_log(db: sqlite_utils.Database, result: JobResult, job_key: str, now: datetime) -> bool:
    """Queue a failed job's log for the reader; False when the job is known already."""
    cursor = db.execute(
        "INSERT INTO job_evidence (repo, job_id, sha, job_key, job_name, conclusion, state, "
        "next_try_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (repo, job_id) DO NOTHING",
        [result.repo, result.job_id, result.sha, job_key, result.job_name, result.conclusion,
         WANTED, to_iso(now), to_iso(now), to_iso(now)])
    return cursor.rowcount > 0


def record(db: sqlite_utils.Database, result: JobResult, job_key: str, found: FailureLines,
           classification: Classification, signature: str | None, source: str,
           now: datetime, *, bytes_read: int | None = None) -> bool:
    """Store what a job's lines say; returns True when that changed what is known.

    Lines read from the log win over lines a source reported (they are read from more of
    it), so a late HUD page never replaces them.
    """
    existing = db.execute("SELECT state, source, signature, class FROM job_evidence "
                          "WHERE repo = ? AND job_id = ?", [result.repo, result.job_id]).fetchone()
    if existing is not None and existing[0] == DONE and existing[1] == LOG and source != LOG:
        return False
    values = [result.repo, result.job_id, result.sha, job_key, result.job_name,
              result.conclusion, DONE, source, classification.kind.value, classification.rule,
              classification.line, to_json_list(classification.hints), signature,
              _lines_json(found), to_json_list(found.tests), found.test_count,
              to_json_list(found.modules), bytes_read, to_iso(now), to_iso(now)]
    db.execute(
        "INSERT INTO job_evidence (repo, job_id, sha, job_key, job_name, conclusion, state, "
        "source, class, class_rule, class_line, class_hints, signature, lines_json, "
        "tests_json, test_count, modules_json, bytes_read, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (repo, job_id) DO UPDATE SET state = excluded.state, "
        "source = excluded.source, class = excluded.class, class_rule = excluded.class_rule, "
        "class_line = excluded.class_line, class_hints = excluded.class_hints, "
        "signature = excluded.signature, lines_json = excluded.lines_json, "
        "tests_json = excluded.tests_json, test_count = excluded.test_count, "
        "modules_json = excluded.modules_json, bytes_read = excluded.bytes_read, "
        "conclusion = excluded.conclusion, last_error = NULL, next_try_at = NULL, "
        "updated_at = excluded.updated_at", values)
    return existing is None or existing[0] != DONE or (existing[2], existing[3]) != (
        signature, classification.kind.value)


def logs_due(db: sqlite_utils.Database, now: datetime, limit: int) -> list[LogDue]:
    """Queued logs whose time has come, oldest request first."""
    return [LogDue(*row) for row in db.execute(
        "SELECT repo, job_id, sha, job_key, job_name, conclusion, attempts FROM job_evidence "
        "WHERE state = ? AND (next_try_at IS NULL OR next_try_at <= ?) "
        "ORDER BY next_try_at, created_at LIMIT ?", [WANTED, to_iso(now), limit])]


def next_log_due(db: sqlite_utils.Database) -> datetime | None:
    row = db.execute("SELECT min(next_try_at) FROM job_evidence WHERE state = ?",
                     [WANTED]).fetchone()
    return from_iso(row[0]) if row else None


def log_not_read(db: sqlite_utils.Database, repo: str, job_id: int, error: str,
                 now: datetime, retry_at: datetime | None) -> None:
    """A read that did not work: try again at ``retry_at``, or give up (``retry_at`` None
    after ``MAX_ATTEMPTS``, or a log that is gone)."""
    row = db.execute("SELECT attempts FROM job_evidence WHERE repo = ? AND job_id = ?",
                     [repo, job_id]).fetchone()
    attempts = (row[0] if row else 0) + 1
    if retry_at is None:
        state = GONE
    elif attempts >= MAX_ATTEMPTS:
        state, retry_at = FAILED, None
    else:
        state = WANTED
    db.execute("UPDATE job_evidence SET state = ?, attempts = ?, next_try_at = ?, "
               "last_error = ?, updated_at = ? WHERE repo = ? AND job_id = ?",
               [state, attempts, to_iso(retry_at), error[:500], to_iso(now), repo, job_id])


def postpone_logs(db: sqlite_utils.Database, until: datetime) -> None:
    """Every queued log waits until ``until`` (GitHub asked the bot to slow down)."""
    db.execute("UPDATE job_evidence SET next_try_at = ? WHERE state = ? AND "
               "(next_try_at IS NULL OR next_try_at < ?)", [to_iso(until), WANTED, to_iso(until)])


# --- reading ---------------------------------------------------------------------------------


def of_jobs(db: sqlite_utils.Database, repo: str,
            job_ids: Iterable[int]) -> dict[int, StoredEvidence]:
    ids = list(dict.fromkeys(job_ids))
    found: dict[int, StoredEvidence] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.execute(f"SELECT {_COLUMNS} FROM job_evidence WHERE repo = ? "
                              f"AND job_id IN ({marks})", [repo, *chunk]):
            evidence = _evidence(row)
            found[evidence.job_id] = evidence
    return found


def flaky_cell_tests(db: sqlite_utils.Database, repo: str, branch: str, job_key: str,
                     newest: int) -> list[str]:
    """Tests that failed in the runs behind the job's ``newest`` flaky cells.

    One statement, whatever the length of the history: the newest flaky cells come from
    the partial index ``cell_rows_flaky``, their failed runs from ``job_evidence_cell``. Every
    failed run of a flaky cell is a run behind a flaky shard (a shard that failed without
    passing would have failed the cell), and only runs whose tests ran (never an
    infrastructure failure) list tests; so this is what merging each cell's runs again and
    reading its flaky runs' evidence gives (``tests/store/test_alert_evidence.py`` checks
    it against that merge).
    """
    tests: list[str] = []
    for (tests_json,) in db.execute(
            # the partial index of flaky cells, named: without statistics the planner
            # would walk the job's every cell from the newest for the few flaky ones
            "SELECT e.tests_json FROM (SELECT s.sha AS sha FROM cell_rows c "
            "INDEXED BY cell_rows_flaky JOIN ci_shas s ON s.id = c.sha "
            "WHERE c.repo = (SELECT id FROM ci_strings WHERE text = ?) "
            "AND c.branch = (SELECT id FROM ci_strings WHERE text = ?) "
            "AND c.job_key = (SELECT id FROM ci_strings WHERE text = ?) "
            "AND c.status = 'flaky' ORDER BY c.position DESC LIMIT ?) AS f "
            "JOIN job_evidence e ON e.repo = ? AND e.job_key = ? AND e.sha = f.sha "
            "WHERE e.tests_json != '[]'",
            [repo, branch, job_key, newest, repo, job_key]):
        tests += from_json_list(tests_json)
    return tests


def infra_job_ids(db: sqlite_utils.Database, repo: str, job_ids: Sequence[int]) -> frozenset[int]:
    """The jobs among ``job_ids`` whose failure is classified infrastructure."""
    if not job_ids:
        return frozenset()
    marks = ",".join("?" * len(job_ids))
    return frozenset(row[0] for row in db.execute(
        f"SELECT job_id FROM job_evidence WHERE repo = ? AND class = ? "
        f"AND job_id IN ({marks})", [repo, FailureClass.INFRA.value, *job_ids]))


def infra_at(db: sqlite_utils.Database, repo: str,
             shas: Sequence[str]) -> list[tuple[StoredEvidence, str | None]]:
    """Failed runs at these commits classified infrastructure, with their job page URL."""
    if not shas:
        return []
    marks = ",".join("?" * len(shas))
    cols = ", ".join(f"e.{c.strip()}" for c in _COLUMNS.split(","))
    # without INDEXED BY the planner walks job_evidence_cell for its order: every failed
    # run of the repository, on every view of an alert
    # the link through a correlated look-up by job id: ``job_results`` is a view of joins
    # (``m018_lean_results``), which SQLite would build whole as a LEFT JOIN's right side
    return [(_evidence(row[:-1]), row[-1]) for row in db.execute(
        f"SELECT {cols}, (SELECT r.html_url FROM job_results r WHERE r.job_id = e.job_id "
        f"AND r.repo = e.repo) FROM job_evidence e INDEXED BY job_evidence_commit "
        f"WHERE e.repo = ? AND e.class = ? "
        f"AND e.sha IN ({marks}) ORDER BY e.job_key, e.job_name, e.job_id",
        [repo, FailureClass.INFRA.value, *shas])]


def pending_count(db: sqlite_utils.Database) -> int:
    return db.execute("SELECT count(*) FROM job_evidence WHERE state = ?",
                      [WANTED]).fetchone()[0]


# --- files each commit touched -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangedFiles:
    """The paths one commit touched (None: not known yet) and its full message."""

    sha: str
    files: tuple[str, ...] | None
    message: str = ""
    truncated: bool = False


def record_files(db: sqlite_utils.Database, repo: str, sha: str, files: Sequence[str],
                 message: str | None, source: str, now: datetime, *,
                 truncated: bool = False) -> None:
    db.execute(
        "INSERT INTO commit_files (repo, sha, state, files_json, truncated, message, source, "
        "recorded_at) VALUES (?, ?, 'known', ?, ?, ?, ?, ?) ON CONFLICT (repo, sha) DO UPDATE "
        "SET state = 'known', files_json = excluded.files_json, truncated = excluded.truncated, "
        "message = coalesce(excluded.message, message), source = excluded.source, "
        "next_try_at = NULL, last_error = NULL, recorded_at = excluded.recorded_at",
        [repo, sha, to_json_list(list(dict.fromkeys(files))), int(truncated), message, source,
         to_iso(now)])


def want_files(db: sqlite_utils.Database, repo: str, shas: Iterable[str], now: datetime) -> int:
    """Queue commits whose files are not known for a commits API look-up; returns how many."""
    queued = 0
    for sha in shas:
        cursor = db.execute(
            "INSERT INTO commit_files (repo, sha, state, next_try_at, recorded_at) "
            "VALUES (?, ?, 'wanted', ?, ?) ON CONFLICT (repo, sha) DO NOTHING",
            [repo, sha, to_iso(now), to_iso(now)])
        queued += cursor.rowcount
    return queued


def files_due(db: sqlite_utils.Database, now: datetime, limit: int) -> list[tuple[str, str, int]]:
    """(repo, sha, attempts) of queued look-ups whose time has come."""
    return [tuple(row) for row in db.execute(  # type: ignore[misc]
        "SELECT repo, sha, attempts FROM commit_files WHERE state = 'wanted' AND "
        "(next_try_at IS NULL OR next_try_at <= ?) ORDER BY next_try_at LIMIT ?",
        [to_iso(now), limit])]


def files_not_read(db: sqlite_utils.Database, repo: str, sha: str, error: str, now: datetime,
                   retry_at: datetime | None) -> None:
    row = db.execute("SELECT attempts FROM commit_files WHERE repo = ? AND sha = ?",
                     [repo, sha]).fetchone()
    attempts = (row[0] if row else 0) + 1
    state = "wanted" if retry_at is not None and attempts < MAX_ATTEMPTS else "gone"
    db.execute("UPDATE commit_files SET state = ?, attempts = ?, next_try_at = ?, "
               "last_error = ? WHERE repo = ? AND sha = ?",
               [state, attempts, to_iso(retry_at if state == "wanted" else None), error[:500],
                repo, sha])


def postpone_files(db: sqlite_utils.Database, until: datetime) -> None:
    db.execute("UPDATE commit_files SET next_try_at = ? WHERE state = 'wanted' AND "
               "(next_try_at IS NULL OR next_try_at < ?)", [to_iso(until), to_iso(until)])


def files_of(db: sqlite_utils.Database, repo: str,
             shas: Sequence[str]) -> dict[str, ChangedFiles]:
    found: dict[str, ChangedFiles] = {}
    for start in range(0, len(shas), 500):
        chunk = list(shas[start:start + 500])
        marks = ",".join("?" * len(chunk))
        for sha, state, files_json, message, truncated in db.execute(
                f"SELECT sha, state, files_json, message, truncated FROM commit_files "
                f"WHERE repo = ? AND sha IN ({marks})", [repo, *chunk]):
            files = from_json_list(files_json) if state == "known" else None
            found[sha] = ChangedFiles(sha, files, message or "", bool(truncated))
    return found


# --- which open alerts show a job or a commit --------------------------------------------------


def open_alerts_showing(db: sqlite_utils.Database, repo: str, job_key: str,
                        sha: str) -> list[int]:
    """Open alerts that show a run of ``job_key`` at ``sha``: new evidence for it changes them.

    Its members (``job_key`` among their jobs), and the alerts whose failing jobs fail
    newest at ``sha``: they list the infrastructure failures of other jobs there (the
    bystanders). Missing the second kind left a parent without the runner-lost line read
    after the members' own logs.
    """
    return [row[0] for row in db.execute(
        "SELECT DISTINCT a.id FROM alerts a JOIN alert_jobs j ON j.alert_id = a.id "
        "WHERE a.repo = ? AND a.state != 'resolved' AND (j.job_key = ? OR "
        "(j.newest_failing_sha = ? AND NOT j.recovered)) ORDER BY a.id",
        [repo, job_key, sha])]


def open_alerts_with_suspect(db: sqlite_utils.Database, repo: str, sha: str) -> list[int]:
    """Open alerts whose regression range holds ``sha``: its files change their ranking."""
    return [row[0] for row in db.execute(
        "SELECT DISTINCT a.id FROM alerts a JOIN commits c ON c.repo = a.repo "
        "AND c.branch = a.branch AND c.sha = ? WHERE a.repo = ? AND a.state != 'resolved' "
        "AND a.range_first_failing IS NOT NULL AND c.position <= a.range_first_failing "
        "AND (a.range_last_green IS NULL OR c.position > a.range_last_green) ORDER BY a.id",
        [sha, repo])]


def infra_causes(db: sqlite_utils.Database, repo: str, branch: str, job_key: str, first: int,
                 newest: int) -> list[str]:
    """The infrastructure causes classified among a job's failed runs at the commits from
    ``first`` to ``newest``: why a streak there may have stopped counting."""
    return [row[0] or "infrastructure" for row in db.execute(
        "SELECT DISTINCT e.class_rule FROM job_evidence e JOIN commits c ON c.repo = e.repo "
        "AND c.branch = ? AND c.sha = e.sha WHERE e.repo = ? AND e.job_key = ? "
        "AND e.class = ? AND c.position BETWEEN ? AND ? ORDER BY e.class_rule",
        [branch, repo, job_key, FailureClass.INFRA.value, first, newest])]


def suspects_without_files(db: sqlite_utils.Database, per_alert: int) -> list[tuple[str, str]]:
    """(repo, sha) of open alerts' suspects whose files are neither known nor queued,
    the newest ``per_alert`` suspects of each alert (the first red commit first)."""
    found: list[tuple[str, str]] = []
    alerts = db.execute("SELECT repo, branch, range_last_green, range_first_failing FROM alerts "
                        "WHERE state != 'resolved' AND range_first_failing IS NOT NULL "
                        "ORDER BY id").fetchall()
    for repo, branch, low, high in alerts:
        found += [(repo, row[0]) for row in db.execute(
            "SELECT c.sha FROM commits c LEFT JOIN commit_files f ON f.repo = c.repo "
            "AND f.sha = c.sha WHERE c.repo = ? AND c.branch = ? AND c.position <= ? "
            "AND c.position > ? AND c.on_branch = 1 AND f.sha IS NULL "
            "ORDER BY c.position DESC LIMIT ?",
            [repo, branch, high, low if low is not None else -(2**62), per_alert])]
    return list(dict.fromkeys(found))
