"""#12.1: a bisect probe runs code from any commit; whatever it prints, no secret leaves the bot.

The probe command prints its own environment, then digs the bot's environment out of
``/proc/$PPID/environ`` (what a hostile commit would do). Nothing of any configured
secret may reach Slack, SQLite or the log, even at DEBUG.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fakes.slack_api import FakeSlack
from tests.support.bot_process import (
    BOT_TOKEN,
    CHANNEL,
    GITHUB_SECRET,
    HF,
    SIGNING_SECRET,
    bot_process,
    broken,
)
from tests.support.trunk import Trunk
from tests.support.waiting import wait_until

HUD_TOKEN = "hud-token-system-93cd1e"
SECRETS = (BOT_TOKEN, SIGNING_SECRET, GITHUB_SECRET, HUD_TOKEN)
N = 8


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def checkout(path: Path) -> list[str]:
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "dev@example.com")
    git(path, "config", "user.name", "dev")
    shas = []
    for i in range(N):
        (path / "n").write_text(f"{i}\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"Change number {i}")
        shas.append(git(path, "rev-parse", "HEAD"))
    return shas


PRINTS_SECRETS = (
    "env; echo; tr '\\0' '\\n' < /proc/$PPID/environ; "
    "echo \"last: $(tr '\\0' '\\n' < /proc/$PPID/environ | grep -E 'TOKEN|SECRET' "
    "| tr '\\n' ' ')\"; exit 1"
)


def config(repo: Path) -> str:
    return f"""
[[routes]]
name = "inductor"
workflows = "^inductor$"
channel = "{CHANNEL}"

[routes.bisect]
backend = "local"
repo = "{repo}"
command = '''{PRINTS_SECRETS}'''
k = 3
timeout = "60s"
"""


def test_a_probe_that_prints_the_environment_leaks_no_secret(tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    shas = checkout(repo)
    trunk: Trunk = broken(N, first_bad=5)
    trunk.shas = shas
    for i in range(1, 5):  # no results between the last green (0) and the breakage: 5 suspects
        trunk.runs.pop((i, HF[1]), None)
    env = {"SCHEDULER_ENABLED": "true", "HUD_TOKEN": HUD_TOKEN, "LOG_LEVEL": "DEBUG"}
    with FakeSlack() as slack, bot_process(tmp_path / "bot", slack, env=env,
                                           config=config(repo)) as bot:
        bot.feed(trunk)
        bot.wait_for_parent()
        [(alert_id,)] = bot.query("SELECT id FROM alerts")
        bot.command(f"bisect A{alert_id}", "bisect")
        slack.wait_for(lambda: slack.responses("bisect"), timeout=15)
        wait_until(lambda: bot.query("SELECT count(*) FROM bisect_probes WHERE source = 'run' "
                                     "AND state = 'done'")[0][0] >= 1, timeout=60,
                   message=f"a probe to finish\n{bot.process.log_tail()}")
        details = [d for (d,) in bot.query("SELECT detail FROM bisect_probes "
                                           "WHERE source = 'run' AND state = 'done'")]
        assert any("[redacted]" in d for d in details), details  # the probe did print them
        # a restart runs the bisect tick at once: the round goes to the thread
        bot.process.stop()
        bot.process.start()
        wait_until(lambda: any("Change number" in m.get("text", "") or "round" in
                               m.get("text", "").lower()
                               for m in slack.replies(CHANNEL, slack.messages(CHANNEL)[0]["ts"])),
                   timeout=30, message=f"a bisect reply\n{bot.process.log_tail()}")
        posted = [str(c.params) for c in slack.calls]
        posted += [str(r) for r in slack.responses()]
        dump = "\n".join(bot.db().iterdump())
    log = bot.process.log_path.read_text()
    assert "redacted" in dump
    for secret in SECRETS:
        assert not any(secret in text for text in posted), f"{secret[:8]}... reached Slack"
        assert secret not in dump, f"{secret[:8]}... stored in SQLite"
        assert secret not in log, f"{secret[:8]}... logged"
