"""One SQLite file in WAL mode, one connection per live thread, write transactions that queue.

sqlite3 connections must not be shared between threads, and the web server, the
scheduler and the Slack sender all run in their own threads; so each thread gets its
own connection to the same file, and SQLite's locking arbitrates between them. A
connection lives as long as its thread: connections of threads that ended are closed
(worker pools grow and shrink with bursts), and a connection that found the file
read-only is dropped, so a permission fix takes effect without a restart.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from migrations import migrations

BUSY_TIMEOUT_S = 30.0


class DatabaseUnusable(RuntimeError):
    """The SQLite file cannot be opened, or cannot be written; ``problem`` says which and why.

    Commands turn it into one line naming the setting that chose the path
    (``DATABASE_PATH`` or ``--db``) and what to change.
    """

    def __init__(self, path: str, problem: str, fix: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.fix = fix

    def explain(self, setting: str) -> str:
        return f"{setting}: {self.path} {self.problem}: {self.fix}, or point {setting} elsewhere"


class Store:
    """Owns the database path and hands each thread its own connection."""

    def __init__(self, path: str | Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        # every open connection, with the thread that owns it (weakly: a thread that
        # ended must not be kept alive by its connection)
        self._all: dict[int, tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = {}
        self._lock = threading.Lock()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
            self.close_orphans()
            try:
                conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s,
                                       check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                raise DatabaseUnusable(
                    self.path, f"cannot be opened ({exc})",
                    "check that its folder exists and this user may write there") from None
            # NORMAL is durable against process crashes in WAL mode, which is what
            # "nothing lost" needs; only an OS crash can lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            # a savepoint keeps each page it changes first in a journal of its own: in
            # memory (bounded by what one transaction writes) instead of a temporary file,
            # replay's batches, a savepoint each, write a third faster
            conn.execute("PRAGMA temp_store = MEMORY")
            conn.execute("PRAGMA foreign_keys = ON")
            db = sqlite_utils.Database(conn, execute_plugins=False)
            self._local.db = db
            with self._lock:
                self._all[id(conn)] = (weakref.ref(threading.current_thread()), conn)
        return db

    def open_connections(self) -> int:
        """How many connections this store holds open (``/healthz`` shows it)."""
        with self._lock:
            return len(self._all)

    def close_orphans(self) -> int:
        """Close the connections of threads that have ended; returns how many were closed.

        Worker pools (the web server's, APScheduler's, probe threads) end threads when
        idle; their connections would otherwise stay open for the life of the process.
        """
        with self._lock:
            dead = [key for key, (thread, _) in self._all.items()
                    if (alive := thread()) is None or not alive.is_alive()]
            conns = [self._all.pop(key)[1] for key in dead]
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        return len(conns)

    def drop_connection(self) -> None:
        """Close this thread's connection; the next use opens a fresh one.

        SQLite opens a file it cannot write read-only, and the connection stays so after
        the permissions are fixed; a fresh connection sees the fix.
        """
        db = getattr(self._local, "db", None)
        if db is None:
            return
        self._local.db = None
        with self._lock:
            self._all.pop(id(db.conn), None)
        with contextlib.suppress(sqlite3.Error):
            db.conn.close()

    @contextmanager
    def transaction(self, wait_s: float | None = None) -> Iterator[sqlite_utils.Database]:
        """A write transaction taken with BEGIN IMMEDIATE.

        IMMEDIATE takes the write lock up front, so two writers queue on the busy
        timeout instead of both reading and then failing to upgrade (a deferred
        transaction's upgrade fails at once with SQLITE_BUSY). Nested use joins the
        outer transaction inside a savepoint. ``wait_s`` waits that long for the lock
        instead of the busy timeout (``sqlite3.OperationalError`` "database is locked"
        after it), for callers that must answer in time whatever the database does.
        """
        db = self.db
        conn = db.conn
        if wait_s is not None and not conn.in_transaction:
            conn.execute(f"PRAGMA busy_timeout = {max(int(wait_s * 1000), 0)}")
            try:
                with self.transaction() as inner:
                    conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                    yield inner
            finally:
                with contextlib.suppress(sqlite3.Error):  # dropped meanwhile (read-only)
                    conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            return
        if conn.in_transaction:
            # nested: a savepoint, so a failing inner unit undoes only its own writes
            # named by depth, so the few names recur and their statements stay prepared
            depth = getattr(self._local, "depth", 0) + 1
            name = f"sp{depth}"
            self._local.depth = depth
            try:
                conn.execute(f"SAVEPOINT {name}")
                try:
                    yield db
                except BaseException:
                    if conn.in_transaction:
                        conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                        conn.execute(f"RELEASE SAVEPOINT {name}")
                    raise
                conn.execute(f"RELEASE SAVEPOINT {name}")
            finally:
                self._local.depth = depth - 1
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            if is_readonly(exc):
                self.drop_connection()
            raise

    def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied (empty when up to date)."""
        self.check_writable()
        db = self.db
        before = {m.name for m in migrations.applied(db)}
        migrations.apply(db)
        return [m.name for m in migrations.applied(db) if m.name not in before]

    def check_writable(self) -> None:
        """Fail now, with a reason, if this file cannot be written.

        A read-only file opens and reads fine; without this check the bot would start,
        answer ``/healthz``, and fail on the first webhook, in another thread.
        """
        conn = self.db.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE write_check (x)")
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            self.drop_connection()  # opened read-only: a retry after a fix must reopen
            raise DatabaseUnusable(
                self.path, f"cannot be written ({exc})",
                "make the file, its -wal and -shm files and its folder writable by this "
                "user") from None

    def probe_write(self, wait_s: float = 0.2) -> str | None:
        """Can a write start now? None when it can, else ``locked``, ``read-only: ...``,
        ``full: ...`` or ``error: ...``.

        Uses a connection of its own, opened for this probe and closed after it: a
        long-lived one may have been opened while the file was read-only, and stays so.
        """
        try:
            conn = sqlite3.connect(self.path, timeout=wait_s, isolation_level=None)
        except sqlite3.Error as exc:
            return f"error: cannot be opened ({exc})"
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE write_check (x)")
            finally:
                conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            name = getattr(exc, "sqlite_errorname", "") or ""
            if name.startswith("SQLITE_BUSY") or "locked" in str(exc):
                return "locked"
            if is_readonly(exc):
                return f"read-only: {exc}"
            if name.startswith("SQLITE_FULL") or "full" in str(exc):
                return f"full: {exc}"
            return f"error: {exc}"
        except sqlite3.Error as exc:
            return f"error: {exc}"
        finally:
            conn.close()
        return None

    def pending_migrations(self) -> list[str]:
        return [m.name for m in migrations.pending(self.db)]

    def close(self) -> None:
        with self._lock:
            for _, conn in self._all.values():
                with contextlib.suppress(sqlite3.Error):  # closed elsewhere already
                    conn.close()
            self._all.clear()
        self._local = threading.local()


def is_readonly(exc: sqlite3.Error) -> bool:
    """The write failed because the file (or its folder, -wal or -shm) is read-only."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith("SQLITE_READONLY") or "readonly database" in str(exc)
