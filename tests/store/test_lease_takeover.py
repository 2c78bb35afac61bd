"""Lease takeover after a crash: a dead holder on this machine loses its lease at once.

Without it, a restarted ``serve`` waited up to 30 s before sending to Slack (and two
minutes before reminding), because the killed process's lease had to expire first.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.store import leases
from bot.store.db import Store

TTL = timedelta(minutes=10)
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

# A child process takes the lease, prints its holder name and waits until told to exit.
CHILD = """
import sys
from datetime import UTC, datetime, timedelta
from bot.store import leases
from bot.store.db import Store
store = Store(sys.argv[1])
holder = leases.holder_id()
with store.transaction() as db:
    assert leases.acquire(db, "sender", holder, timedelta(minutes=10),
                          datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
print(holder, flush=True)
sys.stdin.readline()
"""


def child_holding(db_path: Path) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db_path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def acquire(store: Store, holder: str) -> bool:
    with store.transaction() as db:
        return leases.acquire(db, "sender", holder, TTL, NOW + timedelta(seconds=1))


def test_a_killed_holder_loses_its_lease_at_once(store: Store) -> None:
    child, theirs = child_holding(Path(store.path))
    try:
        mine = leases.holder_id()
        assert not acquire(store, mine), "a live holder keeps its lease"
    finally:
        child.kill()
        child.wait()
    assert leases.crashed(theirs)
    assert acquire(store, mine), "the dead holder's unexpired lease is taken over"
    assert leases.holder_of(store.db, "sender") == mine


def test_holders_elsewhere_or_alive_are_never_taken_over(store: Store) -> None:
    elsewhere = f"not-{socket.gethostname()}:1:1:abcd1234"
    old_format = "12345-abcd1234"
    in_this_process = leases.holder_id()
    for holder in (elsewhere, old_format, in_this_process):
        assert not leases.crashed(holder), holder
        with store.transaction() as db:
            db.execute("DELETE FROM leases")
            assert leases.acquire(db, "sender", holder, TTL, NOW)
        assert not acquire(store, leases.holder_id()), holder
