"""Trunk order, raw job results and the cells derived from them.

Raw results and commits are the source of truth; cells are a cache of
``cell_status`` per (job key, commit) with the commit's position copied in, so the
streak walk is one index range scan that stops at the first pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlite_utils

from bot.domain.cells import FAILED, cell_status, is_failed_run
from bot.domain.failure_classes import without_infra
from bot.domain.model import CellStatus, Commit, JobResult, PlacedCell
from bot.domain.trunk import chain_placements, chains
from bot.store import evidence
from bot.store import results as results_store
from bot.store.codec import from_iso, to_iso

log = logging.getLogger(__name__)

# Positions are spaced so that commits learnt late (an older HUD page, a push we
# missed) can be slotted between known ones without renumbering history.
GAP = 1 << 16



@dataclass(frozen=True, slots=True)
class PlacedCommit:
    sha: str
    position: int
    title: str
    author: str
    pr_number: int | None
    time: datetime | None
    url: str | None


# --- commits ------------------------------------------------------------------------------


def commit_positions(db: sqlite_utils.Database, repo: str, branch: str,
                     shas: Sequence[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(shas), 500):
        chunk = list(shas[start:start + 500])
        marks = ",".join("?" * len(chunk))
        for sha, pos in db.execute(
            f"SELECT sha, position FROM commits WHERE repo = ? AND branch = ? AND sha IN ({marks})",
            [repo, branch, *chunk],
        ):
            found[sha] = pos
    return found


def _neighbour(db: sqlite_utils.Database, repo: str, branch: str, position: int,
               newer: bool) -> int | None:
    op, order = (">", "ASC") if newer else ("<", "DESC")
    row = db.execute(
        f"SELECT position FROM commits WHERE repo = ? AND branch = ? AND position {op} ? "
        f"ORDER BY position {order} LIMIT 1",
        [repo, branch, position],
    ).fetchone()
    return None if row is None else row[0]


def _bounds(db: sqlite_utils.Database, repo: str, branch: str) -> tuple[int | None, int | None]:
    row = db.execute(
        "SELECT min(position), max(position) FROM commits WHERE repo = ? AND branch = ?",
        [repo, branch],
    ).fetchone()
    return row[0], row[1]


# the cells of one branch, in cell_rows (``m020_lean_cells``): parameters repo, branch
CELL_BRANCH = ("repo = (SELECT id FROM ci_strings WHERE text = ?) "
               "AND branch = (SELECT id FROM ci_strings WHERE text = ?)")


def _shift(db: sqlite_utils.Database, repo: str, branch: str, above: int, by: int) -> None:
    """Move every position above ``above`` up by ``by`` (rare: only when a gap is full)."""
    log.info("renumbering trunk order of %s@%s above %d by %d", repo, branch, above, by)
    params = [by, repo, branch, above]
    db.execute("UPDATE commits SET position = position + ? WHERE repo = ? AND branch = ? "
               "AND position > ?", params)
    # cells are keyed by position: moving them in one step could collide mid-way, so
    # they go far out first and come back to their new places
    far = 1 << 61
    db.execute(f"UPDATE cell_rows SET position = position + ? + ? WHERE {CELL_BRANCH} "
               "AND position > ?", [by, far, repo, branch, above])
    db.execute(f"UPDATE cell_rows SET position = position - ? WHERE {CELL_BRANCH} "
               "AND position > ?", [far, repo, branch, far])
    for column in ("first_failing_pos", "newest_failing_pos", "last_green_pos", "reached_pos",
                   "recovered_pos"):
        db.execute(
            f"UPDATE alert_jobs SET {column} = {column} + ? WHERE {column} > ? AND alert_id IN "
            "(SELECT id FROM alerts WHERE repo = ? AND branch = ?)",
            [by, above, repo, branch],
        )
    for column in ("range_last_green", "range_first_failing"):
        db.execute(
            f"UPDATE alerts SET {column} = {column} + ? WHERE {column} > ? AND repo = ? "
            "AND branch = ?",
            [by, above, repo, branch],
        )


def _slots_after(db: sqlite_utils.Database, repo: str, branch: str, anchor: int,
                 count: int) -> list[int]:
    """``count`` free positions strictly between ``anchor`` and the next known commit."""
    upper = _neighbour(db, repo, branch, anchor, newer=True)
    if upper is None:
        return [anchor + GAP * (i + 1) for i in range(count)]
    if upper - anchor <= count:
        _shift(db, repo, branch, anchor, GAP * (count + 1))
        upper = upper + GAP * (count + 1)
    step = (upper - anchor) // (count + 1)
    return [anchor + step * (i + 1) for i in range(count)]


def _slots_before(db: sqlite_utils.Database, repo: str, branch: str, anchor: int,
                  count: int) -> list[int]:
    """``count`` free positions strictly between the previous known commit and ``anchor``."""
    lower = _neighbour(db, repo, branch, anchor, newer=False)
    if lower is None:
        return [anchor - GAP * (count - i) for i in range(count)]
    return _slots_after(db, repo, branch, lower, count)


def place_commits(
    db: sqlite_utils.Database,
    repo: str,
    branch: str,
    commits: Sequence[Commit],
    *,
    after: str | None = None,
    now: datetime,
) -> list[str]:
    """Record commits, given oldest first, in trunk order; returns the newly placed shas.

    With ``after`` the commits are a push (``after`` is its ``before``): see
    ``_place_push``. Without it they are a listing of consecutive commits (a HUD page,
    the commits API): known commits in it anchor the unknown ones next to them; a
    listing with no anchor at all goes after the newest known commit, unless its commits
    are all older than the oldest known one (an older HUD page), then before it.
    Either way, commits waiting for a neighbour that is now placed are placed too.
    """
    if not commits:
        return []
    if after is None:
        placed = _place_listing(db, repo, branch, commits, now)
    else:
        placed = _place_push(db, repo, branch, commits, after, now)
    return placed + place_waiting(db, repo, branch)


def _place_listing(db: sqlite_utils.Database, repo: str, branch: str,
                   commits: Sequence[Commit], now: datetime) -> list[str]:
    known = commit_positions(db, repo, branch, [c.sha for c in commits])
    parents: list[str | None] = [None, *(c.sha for c in commits[:-1])]
    # metadata may improve (a push knows less than HUD): refresh known rows
    for commit, parent in zip(commits, parents, strict=True):
        if commit.sha in known:
            _refresh_commit(db, repo, branch, commit, parent)
    unknown_runs: list[tuple[int | None, list[int]]] = []  # (anchor index, run of indexes)
    run: list[int] = []
    last_known_index: int | None = None
    for index, commit in enumerate(commits):
        if commit.sha in known:
            if run:
                unknown_runs.append((last_known_index, run))
                run = []
            last_known_index = index
        else:
            run.append(index)
    if run:
        unknown_runs.append((last_known_index, run))

    placed: list[str] = []
    for anchor_index, batch in unknown_runs:
        if anchor_index is not None:
            slots = _slots_after(db, repo, branch, known[commits[anchor_index].sha], len(batch))
        elif batch[-1] + 1 < len(commits):  # a known commit right after this run
            slots = _slots_before(db, repo, branch, known[commits[batch[-1] + 1].sha],
                                  len(batch))
        else:
            run_commits = [commits[i] for i in batch]
            slots = _slots_unanchored(db, repo, branch, run_commits)
            if slots is None:  # somewhere in the middle, no neighbour known: wait for one
                _wait(db, repo, branch, run_commits, [parents[i] for i in batch], now)
                continue
        for index, position in zip(batch, slots, strict=True):
            commit = commits[index]
            _insert_commit(db, repo, branch, commit, position, now, parents[index])
            _forget_waiting(db, repo, branch, commit.sha)  # the listing is authoritative
            known[commit.sha] = position
            placed.append(commit.sha)
    return placed


def _place_push(db: sqlite_utils.Database, repo: str, branch: str, commits: Sequence[Commit],
                before: str, now: datetime) -> list[str]:
    """A push: each commit's parent is the one before it, the first's is ``before``.

    New commits wait in ``waiting_commits`` and are placed by ``place_waiting`` as soon
    as a neighbour in the chain is placed; only the very first push of a branch (no
    history at all) is placed as it is, since it has nothing to wait for.
    """
    found = commit_positions(db, repo, branch, [before, *(c.sha for c in commits)])
    known = {c.sha: found[c.sha] for c in commits if c.sha in found}
    parents = [before, *(c.sha for c in commits[:-1])]
    fresh: list[tuple[Commit, str]] = []
    for commit, parent in zip(commits, parents, strict=True):
        if commit.sha in known:
            _refresh_commit(db, repo, branch, commit, parent)
        else:
            fresh.append((commit, parent))
    if not fresh:
        return []
    if not known and before in found:
        # the everyday push: its parent is placed, its commits are new: right after it
        slots = _slots_after(db, repo, branch, found[before], len(fresh))
        db.conn.executemany(
            "INSERT INTO commits (repo, branch, sha, position, title, author, pr_number, time, "
            "url, recorded_at, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(repo, branch, c.sha, pos, c.title, c.author, c.pr_number, to_iso(c.time), c.url,
              to_iso(now), parent) for (c, parent), pos in zip(fresh, slots, strict=True)])
        shas = [c.sha for c, _ in fresh]
        db.execute(f"DELETE FROM waiting_commits WHERE repo = ? AND branch = ? AND sha IN "
                   f"({','.join('?' * len(shas))})", [repo, branch, *shas])
        return shas
    if not known and not has_commits(db, repo, branch):
        for i, (commit, parent) in enumerate(fresh):
            _insert_commit(db, repo, branch, commit, GAP * (i + 1), now, parent)
            _forget_waiting(db, repo, branch, commit.sha)
        return [commit.sha for commit, _ in fresh]
    _wait(db, repo, branch, [c for c, _ in fresh], [p for _, p in fresh], now)
    return []


def place_waiting(db: sqlite_utils.Database, repo: str, branch: str) -> list[str]:
    """Place every waiting commit whose parent or child in the chain is placed now."""
    waiting = dict(db.execute(
        "SELECT sha, parent FROM waiting_commits WHERE repo = ? AND branch = ?",
        [repo, branch]).fetchall())
    if not waiting:
        return []
    parents = [p for p in waiting.values() if p is not None]
    placed_parents = set(commit_positions(db, repo, branch, parents))
    placed_children: dict[str, str] = {}
    shas = sorted(waiting)
    for start in range(0, len(shas), 500):
        chunk = shas[start:start + 500]
        marks = ",".join("?" * len(chunk))
        for parent, child in db.execute(
                f"SELECT parent, sha FROM commits INDEXED BY commits_parent WHERE repo = ? "
                f"AND branch = ? "
                f"AND parent IN ({marks}) ORDER BY sha", [repo, branch, *chunk]):
            placed_children.setdefault(parent, child)
    plan = chain_placements(waiting, placed_parents, placed_children)
    for placement in plan:
        anchor = placement.after or placement.before
        assert anchor is not None
        position = commit_positions(db, repo, branch, [anchor])[anchor]
        if placement.after is not None:
            (slot,) = _slots_after(db, repo, branch, position, 1)
        else:
            (slot,) = _slots_before(db, repo, branch, position, 1)
        _move_waiting(db, repo, branch, placement.sha, slot)
    return [p.sha for p in plan]


def place_stale_waiting(db: sqlite_utils.Database, repo: str, branch: str,
                        recorded_before: datetime) -> list[str]:
    """Place waiting chains at the head once one of them waited since ``recorded_before``.

    The last resort when a push never arrives (a delivery lost for good) and no listing
    fills the gap: the chains keep their own order, oldest chain first, after the
    newest placed commit. A missing parent arriving later still goes before its child.
    """
    stale = db.execute(
        "SELECT 1 FROM waiting_commits WHERE repo = ? AND branch = ? AND recorded_at < ? "
        "LIMIT 1", [repo, branch, to_iso(recorded_before)]).fetchone()
    if stale is None:
        return []
    rows = db.execute("SELECT sha, parent, time, recorded_at FROM waiting_commits "
                      "WHERE repo = ? AND branch = ?", [repo, branch]).fetchall()
    waiting = {sha: parent for sha, parent, _, _ in rows}
    when = {sha: (recorded or "", time or "") for sha, _, time, recorded in rows}
    ordered = sorted(chains(waiting), key=lambda chain: (when[chain[0]], chain[0]))
    placed: list[str] = []
    for chain in ordered:
        log.warning("%s@%s: %d commit(s) from %s waited too long for their parent %s; "
                    "placed at the head", repo, branch, len(chain), chain[0][:12],
                    (waiting[chain[0]] or "?")[:12])
        for sha in chain:
            _, high = _bounds(db, repo, branch)
            _move_waiting(db, repo, branch, sha, (high or 0) + GAP)
            placed.append(sha)
    return placed + place_waiting(db, repo, branch)


def _move_waiting(db: sqlite_utils.Database, repo: str, branch: str, sha: str,
                  position: int) -> None:
    db.execute(
        "INSERT INTO commits (repo, branch, sha, position, title, author, pr_number, time, url, "
        "recorded_at, parent) SELECT repo, branch, sha, ?, title, author, pr_number, time, url, "
        "recorded_at, parent FROM waiting_commits WHERE repo = ? AND branch = ? AND sha = ?",
        [position, repo, branch, sha])
    _forget_waiting(db, repo, branch, sha)


def _forget_waiting(db: sqlite_utils.Database, repo: str, branch: str, sha: str) -> None:
    db.execute("DELETE FROM waiting_commits WHERE repo = ? AND branch = ? AND sha = ?",
               [repo, branch, sha])


def is_waiting(db: sqlite_utils.Database, repo: str, branch: str, sha: str) -> bool:
    """Whether ``sha`` came in a push that waits for its parent (known, not placed yet)."""
    return db.execute("SELECT 1 FROM waiting_commits WHERE repo = ? AND branch = ? AND sha = ?",
                      [repo, branch, sha]).fetchone() is not None


def _slots_unanchored(db: sqlite_utils.Database, repo: str, branch: str,
                      run: Sequence[Commit]) -> list[int] | None:
    """Slots for a run of a listing that shares no commit with history, or None to wait.

    The push chain places it when it knows a neighbour (a placed commit naming the run's
    newest as parent, or a known parent of its oldest); else an empty history starts with
    it, a run older than all history goes before it (an older HUD page), a run newer
    than all of it goes to the head (HUD's newest page after an outage). A run in
    between, with no neighbour known, waits like a push does.
    """
    child = db.execute(
        "SELECT position FROM commits INDEXED BY commits_parent WHERE repo = ? AND branch = ? "
        "AND parent = ? ORDER BY position LIMIT 1", [repo, branch, run[-1].sha]).fetchone()
    if child is not None:
        return _slots_before(db, repo, branch, child[0], len(run))
    parent = db.execute("SELECT parent FROM waiting_commits WHERE repo = ? AND branch = ? "
                        "AND sha = ?", [repo, branch, run[0].sha]).fetchone()
    if parent is not None and parent[0] is not None:
        anchor = commit_positions(db, repo, branch, [parent[0]]).get(parent[0])
        if anchor is not None:
            return _slots_after(db, repo, branch, anchor, len(run))
    low, high = _bounds(db, repo, branch)
    if high is None:
        return [GAP * (i + 1) for i in range(len(run))]
    assert low is not None
    times = [c.time for c in run if c.time is not None]
    oldest, newest = _time_at(db, repo, branch, low), _time_at(db, repo, branch, high)
    if times and oldest and max(times) < oldest:
        return _slots_before(db, repo, branch, low, len(run))
    if times and newest and min(times) < newest:
        return None
    return [high + GAP * (i + 1) for i in range(len(run))]


def _time_at(db: sqlite_utils.Database, repo: str, branch: str, position: int) -> datetime | None:
    row = db.execute("SELECT time FROM commits WHERE repo = ? AND branch = ? AND position = ?",
                     [repo, branch, position]).fetchone()
    return None if row is None else from_iso(row[0])


def _wait(db: sqlite_utils.Database, repo: str, branch: str, commits: Sequence[Commit],
          parents: Sequence[str | None], now: datetime) -> None:
    """Keep commits (with what is known of their parents) until a neighbour is placed."""
    for commit, parent in zip(commits, parents, strict=True):
        db.execute(
            "INSERT INTO waiting_commits (repo, branch, sha, parent, title, author, pr_number, "
            "time, url, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (repo, branch, sha) DO UPDATE SET "
            "parent = coalesce(excluded.parent, parent), "
            "title = coalesce(nullif(excluded.title, ''), title), "
            "author = coalesce(nullif(excluded.author, ''), author), "
            "pr_number = coalesce(excluded.pr_number, pr_number), "
            "time = coalesce(time, excluded.time), url = coalesce(url, excluded.url)",
            [repo, branch, commit.sha, parent, commit.title, commit.author, commit.pr_number,
             to_iso(commit.time), commit.url, to_iso(now)])


def _insert_commit(db: sqlite_utils.Database, repo: str, branch: str, commit: Commit,
                   position: int, now: datetime, parent: str | None) -> None:
    db.execute(
        "INSERT INTO commits (repo, branch, sha, position, title, author, pr_number, time, url, "
        "recorded_at, parent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [repo, branch, commit.sha, position, commit.title, commit.author, commit.pr_number,
         to_iso(commit.time), commit.url, to_iso(now), parent],
    )


def _refresh_commit(db: sqlite_utils.Database, repo: str, branch: str, commit: Commit,
                    parent: str | None) -> None:
    db.execute(
        "UPDATE commits SET title = coalesce(nullif(?, ''), title), "
        "author = coalesce(nullif(?, ''), author), pr_number = coalesce(?, pr_number), "
        "time = coalesce(time, ?), url = coalesce(url, ?), parent = coalesce(parent, ?) "
        "WHERE repo = ? AND branch = ? AND sha = ?",
        [commit.title, commit.author, commit.pr_number, to_iso(commit.time), commit.url,
         parent, repo, branch, commit.sha],
    )


def get_commit(db: sqlite_utils.Database, repo: str, branch: str, sha: str) -> PlacedCommit | None:
    row = db.execute(
        "SELECT sha, position, title, author, pr_number, time, url FROM commits "
        "WHERE repo = ? AND branch = ? AND sha = ?", [repo, branch, sha]).fetchone()
    return _placed(row) if row else None


def _range_filter(repo: str, branch: str, low: int | None,
                  high: int) -> tuple[str, list[object]]:
    """WHERE clause for on-branch commits with ``low < position <= high``."""
    sql = "WHERE repo = ? AND branch = ? AND position <= ? AND on_branch = 1"
    params: list[object] = [repo, branch, high]
    if low is not None:
        sql += " AND position > ?"
        params.append(low)
    return sql, params


def commits_between(db: sqlite_utils.Database, repo: str, branch: str, low: int | None,
                    high: int, limit: int | None = None) -> list[PlacedCommit]:
    """Commits with ``low < position <= high``, oldest first (the suspects of a range)."""
    where, params = _range_filter(repo, branch, low, high)
    sql = (f"SELECT sha, position, title, author, pr_number, time, url FROM commits {where} "
           "ORDER BY position ASC")
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [_placed(row) for row in db.execute(sql, params)]


def count_between(db: sqlite_utils.Database, repo: str, branch: str, low: int | None,
                  high: int) -> int:
    where, params = _range_filter(repo, branch, low, high)
    return db.execute(f"SELECT count(*) FROM commits {where}", params).fetchone()[0]


def _placed(row: tuple) -> PlacedCommit:
    sha, position, title, author, pr_number, time, url = row
    return PlacedCommit(sha, position, title, author, pr_number, from_iso(time), url)


# --- cells ----------------------------------------------------------------------------------


_INFRA_MATTERS = (CellStatus.FAILURE, CellStatus.FLAKY)


@dataclass(slots=True)
class CellChange:
    """A cell that changed, and its status before (None: it is new).

    Not frozen: a batch makes one per cell it recomputes, and a frozen dataclass is
    several times slower to build; nothing changes one after it is made.
    """

    key: str
    cell: PlacedCell
    before: CellStatus | None

    @property
    def may_start_a_streak(self) -> bool:
        """A new failure, or a pass gone (two streaks may join): anything else can only end
        or shorten streaks, or move times, which matters to jobs already in an alert."""
        return self.cell.status is CellStatus.FAILURE or (
            self.before is not None and self.before.is_pass and not self.cell.status.is_pass)


def refresh_cells(db: sqlite_utils.Database, repo: str, branch: str,
                  cells: Iterable[tuple[str, str]],
                  count_infra: Callable[[str], bool] = lambda key: True,
                  interned: results_store.Interned | None = None,
                  known: Mapping[tuple[str, str], Sequence[JobResult]] | None = None,
                  new_commits: Collection[str] = (),
                  fresh: Collection[str] = (),
                  ) -> list[CellChange]:
    """Recompute cells ``(job key, sha)`` from their raw results; returns those that changed.

    Commits whose place in trunk order is not known yet are skipped: their results wait
    in ``results`` and ``place_commits`` callers refresh them later. For a job whose
    ``count_infra`` is False, failures classified as infrastructure count like cancelled
    runs (``EVIDENCE.md``): they make no streak. One query each for the commits, the
    runs, the infra classes and the cells as stored; one ``executemany`` for the changes.
    A cell's time is its latest completion, else its commit's time (``cell_time``).
    ``known``, ``new_commits``: a batch's runs by cell, and its commits that had no run
    before it (``results.runs_of_cells``); ``fresh``: commits with no cell stored yet
    (placed by this batch, or named by a run for the first time: a cell is written only
    for runs at its commit, and retention may leave cells whose runs it removed, so
    "no run stored" is not enough).
    """
    wanted = sorted(set(cells))
    if not wanted:
        return []
    shas = sorted({sha for _, sha in wanted})
    placed = {sha: (pos, from_iso(t)) for sha, pos, t in _commit_rows(db, repo, branch, shas)}
    wanted = [(key, sha) for key, sha in wanted if sha in placed]
    if not wanted:
        return []
    interned = interned or results_store.Interned(db)  # one cache for reading and writing
    runs = results_store.runs_of_cells(db, repo, wanted, interned, known, new_commits)
    statuses = {cell: cell_status(rs) for cell, (rs, _) in runs.items()}
    # an infrastructure failure counts like a cancelled run, which can change only a cell
    # its failure made red or flaky (elsewhere a sibling still running keeps it pending,
    # or nothing failed): only those cells' failed runs are looked up
    failed = [r.job_id for cell, (rs, _) in runs.items()
              if statuses[cell] in _INFRA_MATTERS and not count_infra(cell[0])
              for r in rs if r.conclusion in FAILED and is_failed_run(r)]
    infra = evidence.infra_job_ids(db, repo, failed) if failed else frozenset()
    # a commit in ``fresh`` has no cell yet: nothing to read for it
    before = _cell_rows(db, repo, branch, [(key, placed[sha][0]) for key, sha in wanted
                                           if sha not in fresh])
    changed: list[CellChange] = []
    rows: list[tuple[object, ...]] = []
    # cells are stored by interned ids (``m020_lean_cells``); this is a write transaction
    names = interned.strings({repo, branch} | {key for key, _ in wanted})
    sha_ids = interned.shas({sha for _, sha in wanted})
    repo_id, branch_id = names[repo], names[branch]
    for key, sha in wanted:
        results, latest = runs.get((key, sha), ([], None))
        status = statuses.get((key, sha))
        if status is None:
            status = cell_status(results)
        elif infra and status in _INFRA_MATTERS and not count_infra(key):
            status = cell_status(without_infra(results, infra))
        position, commit_time = placed[sha]
        # seconds, as the results store them: the same cell whether its runs were read
        # back or are the ones just written
        when = (commit_time if latest is None
                else latest.replace(microsecond=0) if latest.microsecond else latest)
        row = (sha, status.value,
               when.isoformat() if when is not None and when.tzinfo is UTC else to_iso(when))
        old = before.get((key, position))
        if old == row:
            continue
        rows.append((repo_id, branch_id, names[key], position, sha_ids[sha], status.value,
                     row[2]))
        changed.append(CellChange(key, PlacedCell(position, sha, status, when),
                                  None if old is None else CellStatus(old[1])))
    db.conn.executemany(
        "INSERT INTO cell_rows (repo, branch, job_key, position, sha, status, time) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repo, branch, job_key, position) "
        "DO UPDATE SET sha = excluded.sha, status = excluded.status, time = excluded.time",
        rows)
    return changed


def refresh_cell(db: sqlite_utils.Database, repo: str, branch: str, job_key: str,
                 sha: str, *, count_infra: bool = True) -> PlacedCell | None:
    """Recompute one cell; returns it when it changed (see ``refresh_cells``)."""
    changed = refresh_cells(db, repo, branch, [(job_key, sha)], lambda key: count_infra)
    return changed[0].cell if changed else None


def _commit_rows(db: sqlite_utils.Database, repo: str, branch: str,
                 shas: Sequence[str]) -> list[tuple[str, int, str | None]]:
    rows: list[tuple[str, int, str | None]] = []
    for start in range(0, len(shas), 500):
        chunk = list(shas[start:start + 500])
        marks = ",".join("?" * len(chunk))
        rows += db.execute(
            f"SELECT sha, position, time FROM commits WHERE repo = ? AND branch = ? "
            f"AND sha IN ({marks})", [repo, branch, *chunk]).fetchall()
    return rows


def _cell_rows(db: sqlite_utils.Database, repo: str, branch: str,
               cells: Sequence[tuple[str, int]]
               ) -> dict[tuple[str, int], tuple[str, str, str | None]]:
    """The stored cells among ``cells`` ``(job key, position)``: (sha, status, time)."""
    out: dict[tuple[str, int], tuple[str, str, str | None]] = {}
    keys = sorted({key for key, _ in cells})
    positions = sorted({pos for _, pos in cells})
    for start in range(0, len(positions), 400):
        chunk = positions[start:start + 400]
        for key, position, sha, status, time in db.execute(
                f"SELECT job_key, position, sha, status, time FROM cells WHERE repo = ? "
                f"AND branch = ? AND job_key IN ({','.join('?' * len(keys))}) "
                f"AND position IN ({','.join('?' * len(chunk))})",
                [repo, branch, *keys, *chunk]):
            out[(key, position)] = (sha, status, time)
    return out


def cells_between(db: sqlite_utils.Database, repo: str, branch: str, job_key: str,
                  low: int | None, high: int | None) -> list[PlacedCell]:
    """Cells of one job key with ``low <= position <= high`` (None: unbounded), oldest first."""
    sql = ("SELECT position, sha, status, time FROM cells WHERE repo = ? AND branch = ? "
           "AND job_key = ?")
    params: list[object] = [repo, branch, job_key]
    if low is not None:
        sql += " AND position >= ?"
        params.append(low)
    if high is not None:
        sql += " AND position <= ?"
        params.append(high)
    return [PlacedCell(p, sha, CellStatus(st), from_iso(t))
            for p, sha, st, t in db.execute(sql + " ORDER BY position", params)]


def pass_beyond(db: sqlite_utils.Database, repo: str, branch: str, job_key: str,
                position: int, newer: bool) -> int | None:
    """The nearest pass (success or flaky) strictly newer (or older) than ``position``.

    It bounds the stretch late facts can change: no streak runs across a pass.
    """
    op, order = (">", "ASC") if newer else ("<", "DESC")
    row = db.execute(
        f"SELECT position FROM cells WHERE repo = ? AND branch = ? AND job_key = ? "
        f"AND position {op} ? AND status IN ('success', 'flaky') ORDER BY position {order} "
        "LIMIT 1", [repo, branch, job_key, position]).fetchone()
    return None if row is None else row[0]


def walk_cells(db: sqlite_utils.Database, repo: str, branch: str,
               job_key: str) -> Iterator[PlacedCell]:
    """Cells of one job key, newest commit first, read lazily in pages."""
    before: int | None = None
    page = 8  # most walks stop within a few cells: a streak plus the pass that ends it
    while True:
        sql = ("SELECT position, sha, status, time FROM cells WHERE repo = ? AND branch = ? "
               "AND job_key = ?")
        params: list[object] = [repo, branch, job_key]
        if before is not None:
            sql += " AND position < ?"
            params.append(before)
        sql += " ORDER BY position DESC LIMIT ?"
        params.append(page)
        rows = db.execute(sql, params).fetchall()
        for position, sha, status, time in rows:
            yield PlacedCell(position, sha, CellStatus(status), from_iso(time))
        if len(rows) < page:
            return
        before = rows[-1][0]
        page = min(page * 4, 4096)


def cell_rows(db: sqlite_utils.Database, repo: str, branch: str,
              job_key: str) -> list[PlacedCell]:
    return list(walk_cells(db, repo, branch, job_key))


# ----------------------------------------------------------------- what pollers ask of trunk


def has_commits(db: sqlite_utils.Database, repo: str, branch: str) -> bool:
    """Whether any commit of the branch is placed yet (a poller's first start has none)."""
    return db.execute("SELECT 1 FROM commits WHERE repo = ? AND branch = ? LIMIT 1",
                      [repo, branch]).fetchone() is not None


def oldest_time_of_newest(db: sqlite_utils.Database, repo: str, branch: str,
                          count: int) -> datetime | None:
    """The time of the oldest of the branch's ``count`` newest commits (None: no times)."""
    row = db.execute(
        "SELECT min(time) FROM (SELECT time FROM commits WHERE repo = ? AND branch = ? "
        "ORDER BY position DESC LIMIT ?)", [repo, branch, count]).fetchone()
    return from_iso(row[0]) if row and row[0] else None
