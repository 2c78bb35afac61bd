"""Each way a newcomer's set-up can be wrong ends in one line naming the setting and the fix.

The commands run as subprocesses, as a person would run them: the exit code is 2, stderr
is a single line (no traceback), and the line names the setting and says what to change.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.serve_process import free_port

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd,
                          env={**base, "PYTHONPATH": str(ROOT), "HOST": "127.0.0.1",
                               "PORT": str(free_port()), **env},
                          capture_output=True, text=True, timeout=60, check=False)


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def migrated(path: Path) -> Path:
    done = run("migrate", "--db", str(path), env={}, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    return path


def read_only(path: Path) -> Path:
    """Make a migrated database read-only for every user, root included.

    Byte 18 of the SQLite header is the file format's write version: SQLite opens a
    file whose write version it does not know for reading only, and every write fails
    with SQLITE_READONLY, as with a file this user may not write (which root always may).
    """
    with sqlite3.connect(path) as con:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    data[18] = 3
    path.write_bytes(bytes(data))
    return path


def test_bisect_section_missing_its_required_key(tmp_path: Path) -> None:
    config = tmp_path / "routes.toml"
    config.write_text('[[routes]]\nname = "inductor"\n[routes.bisect]\nbackend = "github"\n')
    db = migrated(tmp_path / "bot.db")
    done = run("serve", env={"BOT_CONFIG": str(config), "DATABASE_PATH": str(db),
                             "GITHUB_TOKEN": "ghp-test"}, cwd=tmp_path)
    one_line_error(done, "routes.inductor.bisect.workflow", "trunk.yml")


def test_bisect_section_without_a_backend(tmp_path: Path) -> None:
    config = tmp_path / "routes.toml"
    config.write_text('[[routes]]\nname = "inductor"\n[routes.bisect]\nk = 2\n')
    done = run("serve", env={"BOT_CONFIG": str(config),
                             "DATABASE_PATH": str(migrated(tmp_path / "bot.db"))}, cwd=tmp_path)
    one_line_error(done, "routes.inductor.bisect.backend", 'backend = "github"')


@pytest.mark.parametrize("where", ["missing/folder/bot.db", "."])
def test_migrate_on_a_path_that_cannot_be_opened(tmp_path: Path, where: str) -> None:
    done = run("migrate", "--db", str(tmp_path / where), env={}, cwd=tmp_path)
    one_line_error(done, "--db", "cannot be opened", "folder")


def test_migrate_names_database_path_when_it_chose_the_file(tmp_path: Path) -> None:
    done = run("migrate", env={"DATABASE_PATH": str(tmp_path / "no/such/dir/bot.db")},
               cwd=tmp_path)
    one_line_error(done, "DATABASE_PATH", "cannot be opened")


def test_invalid_log_level(tmp_path: Path) -> None:
    done = run("migrate", "--db", str(tmp_path / "bot.db"), env={"LOG_LEVEL": "verbose"},
               cwd=tmp_path)
    one_line_error(done, "LOG_LEVEL", "'verbose'", "INFO")
    assert not (tmp_path / "bot.db").exists(), "nothing ran"


def test_empty_signing_secret_with_a_token(tmp_path: Path) -> None:
    done = run("serve", env={"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "",
                             "DATABASE_PATH": str(migrated(tmp_path / "bot.db"))}, cwd=tmp_path)
    line = one_line_error(done, "SLACK_SIGNING_SECRET is empty", "Basic Information",
                          "console mode")
    assert "xoxb-test" not in line, "a token never appears in a message"


def test_app_token_without_a_bot_token(tmp_path: Path) -> None:
    done = run("serve", env={"SLACK_APP_TOKEN": "xapp-1-secret",
                             "DATABASE_PATH": str(migrated(tmp_path / "bot.db"))}, cwd=tmp_path)
    line = one_line_error(done, "SLACK_APP_TOKEN", "SLACK_BOT_TOKEN", "console mode")
    assert "xapp-1-secret" not in line


def test_read_only_database_at_start(tmp_path: Path) -> None:
    db = read_only(migrated(tmp_path / "bot.db"))
    done = run("serve", env={"DATABASE_PATH": str(db)}, cwd=tmp_path)
    one_line_error(done, "DATABASE_PATH", "cannot be written", "writable")
    done = run("migrate", "--db", str(db), env={}, cwd=tmp_path)
    one_line_error(done, "--db", "cannot be written")


def test_unmigrated_database_at_start(tmp_path: Path) -> None:
    done = run("serve", env={"DATABASE_PATH": str(tmp_path / "new.db")}, cwd=tmp_path)
    one_line_error(done, "DATABASE_PATH", "needs migrations", "migrate")


def test_replay_on_a_missing_file_exits_non_zero(tmp_path: Path) -> None:
    done = run("replay", str(tmp_path / "nope.ndjson"), env={}, cwd=tmp_path)
    one_line_error(done, "nope.ndjson", "no such file")
    assert done.stdout == "", "nothing was replayed"
