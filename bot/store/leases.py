"""Leases in SQLite: which process runs the singletons (Slack sender, scheduler).

Two ``serve`` processes on one database must not both send or both remind; the
lease row decides. A crashed holder's lease expires, or is taken over at once when
the holder provably died on this machine (so a restart after a crash resumes at once).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta

import sqlite_utils

from bot.store.codec import to_iso

log = logging.getLogger(__name__)


def _pid_namespace() -> str:
    """The PID namespace's inode: pids are only comparable inside one namespace."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


def holder_id() -> str:
    """A holder name that says where it runs: ``host:pid-namespace:pid:random``.

    The parts let another process on the same machine see that the holder died
    (``crashed``); the random part keeps two holders of one process apart.
    """
    return f"{socket.gethostname()}:{_pid_namespace()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a zombie (killed, not yet reaped) holds nothing any more
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


def crashed(holder: str) -> bool:
    """True only when ``holder`` ran on this machine, in this PID namespace, and is gone.

    Anything else (another host, another container, an older holder format, no
    ``/proc``) is presumed alive: its lease must expire before it is taken.
    """
    parts = holder.split(":")
    if len(parts) != 4 or parts[1] == "-" or not parts[2].isdigit():
        return False
    host, namespace, pid = parts[0], parts[1], int(parts[2])
    if host != socket.gethostname() or namespace != _pid_namespace():
        return False
    if pid == os.getpid():  # this process: another bot object in it, alive by definition
        return False
    return not _pid_alive(pid)


def acquire(db: sqlite_utils.Database, name: str, holder: str, ttl: timedelta,
            now: datetime) -> bool:
    """Take or renew the lease; True when ``holder`` has it until ``now + ttl``."""
    db.execute(
        "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) "
        "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at WHERE leases.holder = excluded.holder "
        "OR leases.expires_at < ?",
        [name, holder, to_iso(now + ttl), to_iso(now)],
    )
    row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
    if row is not None and row[0] != holder and crashed(row[0]):
        log.info("lease %s: holder %s is gone; taking it over", name, row[0])
        db.execute("UPDATE leases SET holder = ?, expires_at = ? WHERE name = ? AND holder = ?",
                   [holder, to_iso(now + ttl), name, row[0]])
        row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
    return row is not None and row[0] == holder


def release(db: sqlite_utils.Database, name: str, holder: str) -> None:
    db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])


def holder_of(db: sqlite_utils.Database, name: str) -> str | None:
    row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
    return None if row is None else row[0]
