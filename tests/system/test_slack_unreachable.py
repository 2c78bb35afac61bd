"""``python -m bot serve`` in Socket Mode while Slack cannot be reached: it stays up and says so.

A real child process whose ``SLACK_API_URL`` points at a port nothing listens on: no
traceback, no exit; ``/healthz`` answers 503 naming Socket Mode, and the webhooks serve.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.serve_process import ServeProcess, free_port
from tests.support.waiting import wait_until


def test_socket_mode_without_slack_keeps_serving(tmp_path: Path) -> None:
    env = {"DATABASE_PATH": str(tmp_path / "bot.db"), "SCHEDULER_ENABLED": "false",
           "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_APP_TOKEN": "xapp-test",
           "SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/", "SLACK_TIMEOUT": "1",
           "GITHUB_WEBHOOK_SECRET": "s"}
    serve = ServeProcess(env, tmp_path / "serve.log")
    serve.migrate()
    serve.start()
    try:
        with httpx.Client(base_url=serve.url, timeout=5) as http:
            health = wait_until(
                lambda: (r := http.get("/healthz")).status_code == 503
                and "cannot reach" in r.json()["problems"].get("slack_socket", "") and r.json(),
                message="/healthz to name Socket Mode")
            assert "cannot reach Slack" in health["problems"]["slack_socket"]
            assert "slack_auth" in health["problems"]  # auth.test cannot answer either
            # the web edge still answers: an unsigned webhook is refused, not dropped
            assert http.post("/github/webhook", content=b"{}").status_code == 401
        assert serve.proc is not None and serve.proc.poll() is None
        log = serve.log_path.read_text()
        assert "Traceback" not in log, serve.log_tail()
        assert "will be unused" not in log
    finally:
        serve.stop()
