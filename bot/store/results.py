"""Raw job results: stored lean (interned strings, shas and integer times), read as domain data.

Every run of every shard is kept as it was reported, with the fields the rules, the
alert and the evidence read (``m018_lean_results``). Writes come in batches: one query
reads what is stored for the batch's job ids, one ``executemany`` writes what changed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import sqlite_utils

from bot.domain.cells import FLAKY
from bot.domain.model import JobResult
from bot.store.codec import from_json_list, to_json_list

STATUS_RANK = {"queued": 0, "waiting": 0, "requested": 0, "pending": 1, "in_progress": 1}
CHUNK = 500  # ids per IN (...) list: far below SQLite's limit on variables
ROWS_REMEMBERED = 20_000  # string tuples whose ids ``Interned`` keeps (then starts again)

_GITHUB = "https://github.com/"
# the two forms of a GitHub job page that the row's own ids rebuild
_ACTIONS_PAGE = "https://github.com/{repo}/actions/runs/{run_id}/job/{job_id}"
_RUNS_PAGE = "https://github.com/{repo}/runs/{job_id}"

_COLUMNS = ("r.job_id, rp.text, s.sha, rf.text, wf.text, jn.text, k.text, r.run_id, r.attempt, "
            "st.text, cc.text, r.html_url, r.log_url, r.completed, r.failure_lines, so.text")
_FROM = ("FROM results r JOIN ci_strings rp ON rp.id = r.repo JOIN ci_shas s ON s.id = r.sha "
         "JOIN ci_strings k ON k.id = r.job_key JOIN ci_strings wf ON wf.id = r.workflow "
         "JOIN ci_strings jn ON jn.id = r.job_name JOIN ci_strings st ON st.id = r.status "
         "JOIN ci_strings so ON so.id = r.source LEFT JOIN ci_strings rf ON rf.id = r.ref "
         "LEFT JOIN ci_strings cc ON cc.id = r.conclusion")


def _status_rank(status: str) -> int:
    return STATUS_RANK.get(status, 2)  # completed (or anything final) outranks the rest


def _chunks(items: Sequence[object]) -> Iterable[list[object]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start:start + CHUNK])


# --- interning ------------------------------------------------------------------------------------


class Interned:
    """Ids of interned strings and shas, cached while nothing rolls back.

    An id made in a transaction (or savepoint) that rolls back is gone with it: whoever
    rolls back calls ``forget``, or a cached id would point rows at nothing. Most callers
    keep one for a single transaction; replay keeps one across its batches.
    """

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._strings: dict[str, int] = {}
        self._shas: dict[str, int] = {}
        self._texts: dict[int, str] = {}
        self._sha_of: dict[int, str] = {}
        self._rows: dict[tuple[str | None, ...], tuple[int | None, ...]] = {}

    def forget(self) -> None:
        """Drop every cached id: a rollback may have taken some of them back."""
        for cache in (self._strings, self._shas, self._texts, self._sha_of, self._rows):
            cache.clear()

    @property
    def string_rows(self) -> dict[tuple[str | None, ...], tuple[int | None, ...]]:
        """The tuples of strings met so far, as tuples of their ids (``intern_rows``)."""
        return self._rows

    def intern_rows(self, names: Iterable[tuple[str | None, ...]]
                    ) -> dict[tuple[str | None, ...], tuple[int | None, ...]]:
        """Tuples of strings as tuples of their ids (None stays None), remembered.

        A run's strings (repo, job, ref, states) come in a few hundred combinations that
        recur batch after batch: each is turned into ids once, so a short batch, whose
        every run is a different job, costs a lookup per run.
        """
        names = set(names)
        ids = self.strings({text for name in names for text in name if text is not None})
        if len(self._rows) + len(names) > ROWS_REMEMBERED:
            self._rows.clear()
        rows = self._rows
        for name in names:
            rows[name] = tuple(None if text is None else ids[text] for text in name)
        return rows

    def strings(self, texts: Iterable[str], *, create: bool = True) -> dict[str, int]:
        """Ids of strings; readers pass ``create=False`` (a string never stored names no
        row, and a reader must not write: outside a transaction, an insert would leave
        one open and hold the write lock)."""
        return self._ids("ci_strings", "text", self._strings, texts, create=create)

    def shas(self, shas: Iterable[str], *, create: bool = True,
             made: set[str] | None = None) -> dict[str, int]:
        """Ids of shas; ``made`` collects those this call created (no run named them yet,
        and shas are never deleted: so no cell of theirs can be stored)."""
        return self._ids("ci_shas", "sha", self._shas, shas, create=create, made=made)

    def texts(self, ids: Iterable[int]) -> dict[int, str]:
        """The strings behind ids (those this transaction has not met yet are read)."""
        return self._texts_of("ci_strings", "text", self._strings, self._texts, ids)

    def shas_of(self, ids: Iterable[int]) -> dict[int, str]:
        return self._texts_of("ci_shas", "sha", self._shas, self._sha_of, ids)

    def _texts_of(self, table: str, column: str, cache: dict[str, int], reverse: dict[int, str],
                  ids: Iterable[int]) -> dict[int, str]:
        if len(reverse) != len(cache):
            reverse.update((ident, text) for text, ident in cache.items())
        missing = sorted(set(ids) - reverse.keys())
        for chunk in _chunks(missing):
            marks = ",".join("?" * len(chunk))
            for ident, text in self.db.execute(
                    f"SELECT id, {column} FROM {table} WHERE id IN ({marks})", chunk):
                cache[text] = ident
                reverse[ident] = text
        return reverse

    def _ids(self, table: str, column: str, cache: dict[str, int], wanted: Iterable[str],
             create: bool, made: set[str] | None = None) -> dict[str, int]:
        wanted = set(wanted)
        missing = sorted(wanted - cache.keys())
        if missing:
            self._load(table, column, cache, missing)
            unknown = [text for text in missing if text not in cache]
            if unknown and create:
                execute = self.db.conn.execute
                for text in unknown:  # usually one: a new commit, a new job
                    # the new row's id without reading it back (RETURNING would need
                    # SQLite 3.35; lastrowid is as old as the module)
                    cursor = execute(f"INSERT OR IGNORE INTO {table} ({column}) VALUES (?)",
                                     (text,))
                    if cursor.rowcount == 1:
                        cache[text] = cursor.lastrowid
                        if made is not None:
                            made.add(text)
                raced = [text for text in unknown if text not in cache]
                if raced:  # another writer made them since they were read
                    self._load(table, column, cache, raced)
        return {text: cache[text] for text in wanted if text in cache}

    def _load(self, table: str, column: str, cache: dict[str, int], texts: list[str]) -> None:
        for chunk in _chunks(texts):
            marks = ",".join("?" * len(chunk))
            for ident, text in self.db.execute(
                    f"SELECT id, {column} FROM {table} WHERE {column} IN ({marks})", chunk):
                cache[text] = ident


# --- writing --------------------------------------------------------------------------------------


def _epoch(when: datetime | None) -> int | None:
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp())


def _from_epoch(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _page(result: JobResult) -> str | None:
    """The job page link as stored: a marker when the row's own ids rebuild it."""
    url = result.html_url
    if url is None or not url.startswith("https://github.com/"):
        return url
    if url == f"https://github.com/{result.repo}/actions/runs/{result.run_id}/job/" \
              f"{result.job_id}" and result.run_id is not None:
        return ""
    if url == f"https://github.com/{result.repo}/runs/{result.job_id}":
        return "^"
    return url


def _full_page(stored: str | None, repo: str, run_id: int | None, job_id: int) -> str | None:
    if stored == "":
        return _ACTIONS_PAGE.format(repo=repo, run_id=run_id, job_id=job_id)
    if stored == "^":
        return _RUNS_PAGE.format(repo=repo, job_id=job_id)
    return stored


def _merge(old: JobResult, new: JobResult) -> JobResult | None:
    """What storing ``new`` over ``old`` (same job id) leaves, or None if nothing changes.

    GitHub sends queued, in_progress and completed for one job id, possibly out of
    order: a later status never gives way to an earlier one. HUD's "flaky" for a run
    says more than its webhook's plain "success". Links and lines only ever fill in.
    """
    if _status_rank(new.status) < _status_rank(old.status):
        return None
    conclusion = new.conclusion
    if old.conclusion == FLAKY and conclusion == "success":
        conclusion = FLAKY
    merged = replace(
        new, conclusion=conclusion,
        html_url=new.html_url if new.html_url is not None else old.html_url,
        log_url=new.log_url if new.log_url is not None else old.log_url,
        completed_at=new.completed_at if new.completed_at is not None else old.completed_at,
        failure_lines=new.failure_lines or old.failure_lines,
    )
    same = (old.status == merged.status and old.conclusion == merged.conclusion
            and old.failure_lines == merged.failure_lines and old.log_url == merged.log_url
            and old.html_url == merged.html_url)
    return None if same else merged


@dataclass
class Recorded:
    """What a batch stored: the runs that changed something, the commits of the batch that
    had no run stored before it (their cells hold exactly the batch's runs), and those no
    run had ever named (their sha was interned by this batch): no cell of theirs exists,
    whatever retention removed before."""

    changed: list[tuple[JobResult, str]]
    new_commits: set[str]
    first_named: set[str] = field(default_factory=set)


def record_results(db: sqlite_utils.Database, items: Sequence[tuple[JobResult, str]],
                   interned: Interned | None = None) -> list[tuple[JobResult, str]]:
    """Store a batch of runs ``(result, job key)``; returns those that changed something.

    Redeliveries and stale statuses change nothing and are not returned. Several
    deliveries of one job id in the batch merge as if stored one after the other.
    """
    return record_batch(db, items, interned).changed


def record_batch(db: sqlite_utils.Database, items: Sequence[tuple[JobResult, str]],
                 interned: Interned | None = None) -> Recorded:
    """``record_results``, also saying which of the batch's commits had no run before."""
    interned = interned or Interned(db)
    batch: dict[int, tuple[JobResult, str]] = {item[0].job_id: item for item in items}
    if len(batch) != len(items):  # an id delivered twice: merge as if stored in turn
        batch = {}
        for result, key in items:
            prev = batch.get(result.job_id)
            if prev is None:
                batch[result.job_id] = (result, key)
            else:
                merged = _merge(prev[0], result)
                if merged is not None:
                    batch[result.job_id] = (merged, key)
    stored = {r.job_id: r for r in _by_ids(db, list(batch))}
    if not stored:  # all new: the usual batch
        changed = list(batch.values())
    else:
        changed = []
        for job_id, (result, key) in batch.items():
            old = stored.get(job_id)
            final = result if old is None else _merge(old, result)
            if final is not None:
                changed.append((final, key))
    if not changed:
        return Recorded([], set())
    first_named: set[str] = set()
    shas = interned.shas({r.sha for r, _ in changed}, made=first_named)
    before: set[int] = set()
    for chunk in _chunks(sorted(shas.values())):
        before.update(row[0] for row in db.execute(
            f"SELECT DISTINCT sha FROM results INDEXED BY results_commit "
            f"WHERE sha IN ({','.join('?' * len(chunk))})", chunk))
    new_commits = {sha for sha, ident in shas.items() if ident not in before}
    # the strings of a run repeat across batches (a few hundred jobs, a few states): each
    # combination is turned into ids once (``Interned.string_rows``), then looked up; the
    # rows of combinations met for the first time are finished once they are all known
    known = interned.string_rows
    rows: list[tuple[object, ...]] = []
    append = rows.append
    unknown: list[tuple[int, tuple[str | None, ...], tuple[object, ...]]] = []
    for r, key in changed:
        name = (r.repo, key, r.workflow, r.job_name, r.branch, r.status, r.conclusion,
                r.source)
        completed = r.completed_at
        if completed is not None:
            completed = (int(completed.timestamp()) if completed.tzinfo is not None
                         else _epoch(completed))
        html = r.html_url
        if html is not None:
            # the usual job page is rebuilt from the row's own ids (see ``_page``)
            if (html == f"{_GITHUB}{r.repo}/actions/runs/{r.run_id}/job/{r.job_id}"
                    and r.run_id is not None):
                html = ""
            elif html.startswith(_GITHUB):
                html = _page(r)
        rest = (r.job_id, shas[r.sha], r.run_id, r.attempt, completed, html, r.log_url,
                to_json_list(r.failure_lines) if r.failure_lines else None)
        ids = known.get(name)
        if ids is None:
            unknown.append((len(rows), name, rest))
        else:
            rest = ids + rest  # the interned strings first, as the columns are listed below
        append(rest)
    if unknown:
        made = interned.intern_rows([name for _, name, _ in unknown])
        for index, name, rest in unknown:
            rows[index] = made[name] + rest
    db.conn.executemany(
        "INSERT INTO results (repo, job_key, workflow, job_name, ref, status, conclusion, "
        "source, job_id, sha, run_id, attempt, completed, html_url, log_url, failure_lines) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, "
        "conclusion = excluded.conclusion, completed = excluded.completed, "
        "html_url = excluded.html_url, log_url = excluded.log_url, "
        "failure_lines = excluded.failure_lines", rows)
    return Recorded(changed, new_commits, first_named)


def record_result(db: sqlite_utils.Database, result: JobResult, job_key: str) -> bool:
    """Store one run; False when it changes nothing (a redelivery, a stale status)."""
    return bool(record_results(db, [(result, job_key)]))


# --- reading --------------------------------------------------------------------------------------


def _row(row: tuple) -> JobResult:
    (job_id, repo, sha, ref, workflow, job_name, _key, run_id, attempt, status, conclusion,
     html, log, completed, lines, source) = row
    return JobResult(
        repo=repo, sha=sha, workflow=workflow, job_name=job_name, job_id=job_id,
        status=status, conclusion=conclusion, run_id=run_id, attempt=attempt, branch=ref,
        html_url=_full_page(html, repo, run_id, job_id), log_url=log,
        completed_at=_from_epoch(completed),
        failure_lines=from_json_list(lines) if lines else (), source=source)


def _by_ids(db: sqlite_utils.Database, job_ids: list[int]) -> list[JobResult]:
    """The stored runs among ``job_ids``.

    Most batches are all new: the primary key alone says so (GitHub's ids grow, so a batch
    above the largest id stored has none stored; else a lookup by key), and only the ids
    found are read whole (the eight joins of a whole row cost more than the lookup).
    """
    if not job_ids:
        return []
    largest = db.execute("SELECT max(job_id) FROM results").fetchone()[0]
    if largest is None or min(job_ids) > largest:
        return []
    stored: list[int] = []
    for chunk in _chunks(job_ids):
        stored += [row[0] for row in db.execute(
            f"SELECT job_id FROM results WHERE job_id IN ({','.join('?' * len(chunk))})",
            chunk)]
    found: list[JobResult] = []
    for chunk in _chunks(stored):
        marks = ",".join("?" * len(chunk))
        found += [_row(row) for row in db.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE r.job_id IN ({marks})", chunk)]
    return found


def results_at(db: sqlite_utils.Database, repo: str, shas: Sequence[str],
               keys: Iterable[str] | None = None) -> dict[tuple[str, str], list[JobResult]]:
    """The runs at each of ``shas``, by (job key, sha); only of ``keys`` when given."""
    interned = Interned(db)
    sha_ids = interned.shas(shas, create=False)
    repo_id = interned.strings([repo], create=False).get(repo)
    if not sha_ids or repo_id is None:
        return {}
    key_filter = ""
    key_ids: list[int] = []
    if keys is not None:
        key_ids = sorted(interned.strings(keys, create=False).values())
        if not key_ids:
            return {}
        key_filter = f" AND r.job_key IN ({','.join('?' * len(key_ids))})"
    out: dict[tuple[str, str], list[JobResult]] = {}
    for chunk in _chunks(sorted(sha_ids.values())):
        marks = ",".join("?" * len(chunk))
        for row in db.execute(
                f"SELECT {_COLUMNS} {_FROM} WHERE r.sha IN ({marks}){key_filter} AND r.repo = ?",
                [*chunk, *key_ids, repo_id]):
            out.setdefault((row[6], row[2]), []).append(_row(row))
    return out


def runs_of_cells(db: sqlite_utils.Database, repo: str, cells: Iterable[tuple[str, str]],
                  interned: Interned | None = None,
                  known: Mapping[tuple[str, str], Sequence[JobResult]] | None = None,
                  complete: Collection[str] = (),
                  ) -> dict[tuple[str, str], tuple[list[JobResult], datetime | None]]:
    """Each cell's runs, as the cell rules read them, and its latest completion.

    ``known`` are runs the caller holds as stored, by cell (a batch it just wrote): the
    index on results says which runs each cell has, and only the others are read from
    the table, with their job, status and conclusion (no links or lines). At the
    commits in ``complete`` nothing was stored before the batch: their runs are all
    known, and the table is not read at all.
    """
    interned = interned or Interned(db)
    known = known or {}
    out: dict[tuple[str, str], tuple[list[JobResult], datetime | None]] = {}
    rest: list[tuple[str, str]] = []
    for cell in cells:
        if cell[1] in complete:
            runs = known.get(cell)
            if runs:  # the caller's own list: nothing here changes it
                out[cell] = (runs if type(runs) is list else list(runs), _latest(runs))
        else:
            rest.append(cell)
    if rest:
        by_id = {run.job_id: run for runs in known.values() for run in runs}
        _read_cells(db, repo, rest, interned, by_id, out)
    return out


def _latest(runs: Sequence[JobResult]) -> datetime | None:
    times = [r.completed_at for r in runs if r.completed_at is not None]
    return max(times) if times else None


def _read_cells(db: sqlite_utils.Database, repo: str, cells: list[tuple[str, str]],
                interned: Interned, known: Mapping[int, JobResult],
                out: dict[tuple[str, str], tuple[list[JobResult], datetime | None]]) -> None:
    repo_id = interned.strings([repo], create=False).get(repo)
    key_ids = interned.strings({key for key, _ in cells}, create=False)
    sha_ids = interned.shas({sha for _, sha in cells}, create=False)
    if repo_id is None or not sha_ids:
        return
    wanted = set(cells)
    keys = sorted(key_ids.values())
    members: list[tuple[int, int, int]] = []  # (job id, sha id, key id), from the index alone
    for chunk in _chunks(sorted(sha_ids.values())):
        members += db.execute(
            f"SELECT job_id, sha, job_key FROM results INDEXED BY results_commit "
            f"WHERE sha IN ({','.join('?' * len(chunk))}) "
            f"AND job_key IN ({','.join('?' * len(keys))})", [*chunk, *keys]).fetchall()
    others = [job_id for job_id, _, _ in members if job_id not in known]
    rows: dict[int, tuple[int, int, int, int, int, int | None, int | None]] = {}
    for chunk in _chunks(others):
        for row in db.execute(
                f"SELECT job_id, repo, workflow, job_name, status, conclusion, completed "
                f"FROM results WHERE job_id IN ({','.join('?' * len(chunk))})", chunk):
            rows[row[0]] = row
    texts = interned.texts({i for row in rows.values() for i in row[1:6] if i is not None}
                           | {key for _, _, key in members})
    shas = interned.shas_of({sha for _, sha, _ in members})
    for job_id, sha_id, key_id in members:
        ident = (texts[key_id], shas[sha_id])
        if ident not in wanted:
            continue
        run = known.get(job_id)
        if run is not None:
            if run.repo != repo:
                continue
        else:
            _, repo_of, wf, name, status, conclusion, epoch = rows[job_id]
            if texts[repo_of] != repo:
                continue
            run = JobResult(repo=repo, sha=ident[1], workflow=texts[wf], job_name=texts[name],
                            job_id=job_id, status=texts[status],
                            conclusion=None if conclusion is None else texts[conclusion],
                            completed_at=_from_epoch(epoch))
        runs, latest = out.get(ident, ([], None))
        runs.append(run)
        completed = run.completed_at
        if completed is not None and (latest is None or completed > latest):
            latest = completed
        out[ident] = (runs, latest)


def results_for_cell(db: sqlite_utils.Database, repo: str, job_key: str,
                     sha: str) -> list[JobResult]:
    return results_at(db, repo, [sha], [job_key]).get((job_key, sha), [])


def results_of_job(db: sqlite_utils.Database, repo: str, job_key: str,
                   shas: Sequence[str]) -> dict[str, list[JobResult]]:
    """One job's runs at each of ``shas`` (one query), for reading evidence across commits."""
    return {sha: runs for (_, sha), runs in results_at(db, repo, shas, [job_key]).items()}


def job_keys_at(db: sqlite_utils.Database, repo: str, shas: Sequence[str],
                interned: Interned | None = None) -> dict[str, set[str]]:
    """The jobs that ran at each of ``shas``: what to judge once those commits are placed.

    A commit that no run names yet has no interned sha: nothing more is read for it.
    """
    out: dict[str, set[str]] = {}
    interned = interned or Interned(db)
    sha_ids = interned.shas(shas, create=False)
    if not sha_ids:
        return out
    repo_id = interned.strings([repo], create=False).get(repo)
    if repo_id is None:
        return out
    for chunk in _chunks(sorted(sha_ids.values())):
        marks = ",".join("?" * len(chunk))
        for sha, key in db.execute(
                f"SELECT DISTINCT s.sha, k.text FROM results r JOIN ci_shas s ON s.id = r.sha "
                f"JOIN ci_strings k ON k.id = r.job_key WHERE r.sha IN ({marks}) "
                "AND r.repo = ?", [*chunk, repo_id]):
            out.setdefault(sha, set()).add(key)
    return out
