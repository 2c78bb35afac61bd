"""``LOG_LEVEL`` governs every line ``serve`` writes, the web server's own included."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.serve_process import ServeProcess


@pytest.mark.parametrize(("level", "uvicorn_lines"), [("INFO", True), ("WARNING", False)])
def test_uvicorn_follows_log_level(tmp_path: Path, level: str, uvicorn_lines: bool) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "bot.db"), "SCHEDULER_ENABLED": "false",
           "GITHUB_WEBHOOK_SECRET": "s", "LOG_LEVEL": level}
    serve = ServeProcess(env, tmp_path / "serve.log")
    serve.migrate()
    serve.start()
    try:
        with httpx.Client(base_url=serve.url, timeout=5) as http:
            assert http.post("/github/webhook", content=b"{}").status_code == 401
    finally:
        serve.stop()
    log = serve.log_path.read_text()
    assert ("Uvicorn running on" in log) is uvicorn_lines, serve.log_tail()
    assert (" INFO " in log) is uvicorn_lines, serve.log_tail()
