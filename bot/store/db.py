"""One SQLite file in WAL mode, one connection per thread, write transactions that queue.

sqlite3 connections must not be shared between threads, and the web server, the
scheduler and the Slack sender all run in their own threads; so each thread gets its
own connection to the same file, and SQLite's locking arbitrates between them.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import threading
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
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._savepoints = itertools.count()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection, opened on first use."""
        db = getattr(self._local, "db", None)
        if db is None:
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
            conn.execute("PRAGMA foreign_keys = ON")
            db = sqlite_utils.Database(conn, execute_plugins=False)
            self._local.db = db
            with self._lock:
                self._all.append(conn)
        return db

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """A write transaction taken with BEGIN IMMEDIATE.

        IMMEDIATE takes the write lock up front, so two writers queue on the busy
        timeout instead of both reading and then failing to upgrade (a deferred
        transaction's upgrade fails at once with SQLITE_BUSY). Nested use joins the
        outer transaction inside a savepoint.
        """
        db = self.db
        conn = db.conn
        if conn.in_transaction:
            # nested: a savepoint, so a failing inner unit undoes only its own writes
            name = f"sp{next(self._savepoints)}"
            conn.execute(f"SAVEPOINT {name}")
            try:
                yield db
            except BaseException:
                if conn.in_transaction:
                    conn.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    conn.execute(f"RELEASE SAVEPOINT {name}")
                raise
            conn.execute(f"RELEASE SAVEPOINT {name}")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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
            raise DatabaseUnusable(
                self.path, f"cannot be written ({exc})",
                "make the file, its -wal and -shm files and its folder writable by this "
                "user") from None

    def pending_migrations(self) -> list[str]:
        return [m.name for m in migrations.pending(self.db)]

    def close(self) -> None:
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.ProgrammingError):  # closed elsewhere already
                    conn.close()
            self._all.clear()
        self._local = threading.local()
