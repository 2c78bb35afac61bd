"""``python -m bot demo``: a whole Inductor incident played against the real bot, in console mode.

The bot runs as ``serve`` would (console mode, a throwaway database, its HTTP server on
127.0.0.1) and the incident in ``examples/inductor-incident/`` reaches it as it would in
production: HUD's history through the HUD poller, GitHub and Grafana webhooks and Slack
slash commands as signed HTTP requests. Under each step of the story comes what Slack
would show. The bot's clock follows the incident's own times, so a 2025 incident is
judged as if it were happening now.
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

import httpx
import uvicorn

from bot.config import ConfigError, load_settings
from bot.ingest.pollers.hud import HudPoller
from bot.runtime import Bot
from bot.slack.console import ConsoleApi
from bot.store.db import DatabaseUnusable, Store
from bot.web.app import create_app
from bot.web.signatures import sign_github, sign_slack

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "inductor-incident"
START_TIMEOUT_S = 10.0
STEP_TIMEOUT_S = 20.0
WIDTH = 92


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="play an example incident against the bot in console mode",
        description=__doc__)
    parser.add_argument("--incident", default=str(EXAMPLES), metavar="DIR",
                        help="folder with incident.ndjson, routes.toml and the HUD page "
                             "(default: examples/inductor-incident)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.incident)
    story = folder / "incident.ndjson"
    if not story.is_file():
        print(f"demo: {story} does not exist: pass --incident with a folder holding "
              "incident.ndjson and routes.toml", file=sys.stderr)
        return 2
    try:
        lines = [json.loads(line) for line in story.read_text().splitlines() if line.strip()]
    except ValueError as exc:
        print(f"demo: {story} is not NDJSON: {exc}", file=sys.stderr)
        return 2
    # the story's output is the point: the bot's own log stays out of the way
    for name in ("bot", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="inductor-bot-demo-") as tmp:
        try:
            with Demo(folder, Path(tmp), sys.stdout) as demo:
                demo.play(lines)
        except (ConfigError, DatabaseUnusable) as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 2
    return 0


class IncidentClock:
    """The bot's clock: the time of the story line being played."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


class Demo:
    """One bot in console mode, its HTTP server, a HUD stand-in, and the story's printer."""

    def __init__(self, folder: Path, tmp: Path, out: TextIO) -> None:
        self.folder = folder
        self.out = out
        self.clock = IncidentClock()
        self.github_secret = secrets.token_hex(16)
        self.grafana_token = secrets.token_hex(16)
        self.signing_secret = secrets.token_hex(16)
        self.hud = HudPages(folder)
        env = {"DATABASE_PATH": str(tmp / "demo.db"),
               "BOT_CONFIG": str(folder / "routes.toml"),
               "GITHUB_WEBHOOK_SECRET": self.github_secret,
               "GRAFANA_WEBHOOK_TOKEN": self.grafana_token,
               "SLACK_SIGNING_SECRET": self.signing_secret,
               "HUD_URL": self.hud.url, "SCHEDULER_ENABLED": "false"}
        self.settings = replace(load_settings(env), host="127.0.0.1", port=0)
        self.step = 0
        self.shown = 0
        self._stack: list[Any] = []

    # --- set-up ---------------------------------------------------------------------------

    def __enter__(self) -> Demo:
        store = Store(self.settings.database_path)
        try:
            store.migrate()
        finally:
            store.close()
        # the sender keeps the incident's time too: "still failing" replies are spaced
        # by the route's extend_interval in incident time, as they would be live
        self.bot = Bot(self.settings, clock=self.clock, sender_options={"clock": self.clock},
                       console_write=self._print_message)
        self.bot.start()
        self._stack.append(self.bot.stop)
        self.hud.start()
        self._stack.append(self.hud.stop)
        self.base_url = self._serve()
        self.http = httpx.Client(base_url=self.base_url, timeout=30)
        self._stack.append(self.http.close)
        api = self.bot.slack_api
        assert isinstance(api, ConsoleApi), "the demo runs in console mode"
        self.console = api
        return self

    def __exit__(self, *exc: object) -> None:
        for stop in reversed(self._stack):
            stop()

    def _serve(self) -> str:
        config = uvicorn.Config(create_app(self.bot), host="127.0.0.1", port=0,
                                log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="demo-http", daemon=True)
        thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the bot's HTTP server did not start")
            time.sleep(0.01)

        def stop() -> None:
            server.should_exit = True
            thread.join(10)

        self._stack.append(stop)
        port = server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    # --- the story ------------------------------------------------------------------------

    def play(self, lines: list[dict[str, Any]]) -> None:
        self._say("inductor-bot demo: a broken-trunk incident, played against the real bot "
                  "in console mode (no Slack workspace needed).")
        self._say(f"The bot serves {self.base_url} with a throwaway database; the incident "
                  f"comes from {_shown_path(self.folder)}. Under each step: what Slack would "
                  "show.")
        for number, line in enumerate(lines, start=1):
            at = line.get("at")
            if at:
                self.clock.now = datetime.fromisoformat(at.replace("Z", "+00:00"))
            event, payload = line.get("event"), line.get("payload") or {}
            if event == "note":
                self._finish_step()
                self._begin_step(str(payload.get("text", "")))
            elif event in ("push", "workflow_job"):
                self._github(event, payload, f"demo-{number}")
            elif event == "grafana":
                self._grafana(payload)
            elif event == "slash_command":
                self._command(payload)
            elif event == "hud_poll":
                self.hud.serve(str(payload.get("page", "hud-page.json")))
                HudPoller(self.bot).poll_once()
            else:
                raise ValueError(f"line {number}: unknown event {event!r}")
            self._settle()
        self._finish_step()
        self._write("\n")
        self._say("That was the whole incident: one alert, edited in place, with a quiet "
                  "thread. The same files replay offline (GitHub and HUD lines; the rest is "
                  "skipped):")
        files = " ".join(_shown_path(self.folder / name)
                         for name in ("hud-page.json", "incident.ndjson"))
        self._write(f"  {_shown_path(Path(sys.executable))} -m bot replay --config "
                    f"{_shown_path(self.folder / 'routes.toml')} {files}\n")

    def _github(self, event: str, payload: dict[str, Any], delivery: str) -> None:
        body = json.dumps(payload).encode()
        answer = self.http.post("/github/webhook", content=body, headers={
            "X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign_github(self.github_secret, body)})
        self._check(answer, f"GitHub {event}")

    def _grafana(self, payload: dict[str, Any]) -> None:
        answer = self.http.post("/grafana/webhook", json=payload,
                                headers={"Authorization": f"Bearer {self.grafana_token}"})
        self._check(answer, "Grafana notification")

    def _command(self, payload: dict[str, Any]) -> None:
        channel = next((r.channel for r in self.settings.routes if r.channel), "console")
        form = {"token": "demo", "team_id": "T0DEMO", "team_domain": "demo",
                "channel_id": channel, "channel_name": "ci-inductor",
                "user_id": payload.get("user_id", "U0DEMO"),
                "user_name": payload.get("user_name", "demo"),
                "command": payload.get("command", "/inductor"), "text": payload.get("text", ""),
                # Slack gives every command a fresh trigger_id (the bot ignores a repeat)
                "api_app_id": "A0DEMO", "trigger_id": f"{time.time_ns()}.{secrets.token_hex(8)}",
                # never used: console mode answers on the console, not at response_url
                "response_url": "https://hooks.slack.invalid/commands/demo"}
        body = urlencode(form).encode()
        stamp = str(int(time.time()))
        answer = self.http.post("/slack/events", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": sign_slack(self.signing_secret, body, stamp)})
        self._check(answer, f"{form['command']} {form['text']}")

    @staticmethod
    def _check(answer: httpx.Response, what: str) -> None:
        if not 200 <= answer.status_code < 300:  # 202: received, not watched (a trunk job)
            raise RuntimeError(f"{what} was answered {answer.status_code}: {answer.text}")

    def _settle(self) -> None:
        """Let the sender deliver everything this line caused before the next one."""
        if not self.bot.sender.wait_idle(STEP_TIMEOUT_S):
            raise RuntimeError("the Slack sender did not settle")

    # --- printing -------------------------------------------------------------------------

    def _begin_step(self, text: str) -> None:
        self.step += 1
        self.shown = len(self.console.transcript)
        when = self.clock.now.strftime("%H:%M UTC")
        head = f"━━ Step {self.step} · {when} "
        self._write("\n" + head + "━" * max(3, WIDTH - len(head)) + "\n")
        self._write(textwrap.fill(text, WIDTH, break_on_hyphens=False) + "\n\n")

    def _finish_step(self) -> None:
        if self.step and len(self.console.transcript) == self.shown:
            self._write("(nothing posted)\n")

    def _say(self, text: str) -> None:
        self._write(textwrap.fill(text, WIDTH, break_on_hyphens=False) + "\n")

    def _print_message(self, text: str) -> None:
        self._write(text)

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


def _shown_path(path: Path) -> str:
    """A path as short as it can be: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class HudPages:
    """HUD's API on 127.0.0.1 for the HUD poller: the chosen page as page 1, nothing after."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.page: bytes = json.dumps({"shaGrid": [], "jobNames": []}).encode()
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                path = urlsplit(self.path).path
                first = path.startswith("/api/hud/") and path.endswith("/1")
                body = pages.page if first else b'{"shaGrid": [], "jobNames": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: the demo prints the story, not HTTP lines."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def serve(self, name: str) -> None:
        self.page = (self.folder / name).read_bytes()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="demo-hud",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

