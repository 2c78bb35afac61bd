"""Running ``python -m bot replay`` as a subprocess and reading its JSON, for tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ALERT_KEYS = {"id", "state", "repo", "branch", "team", "priority", "first_failing_sha",
              "last_green_sha", "suspects", "jobs"}
JOB_KEYS = {"key", "streak", "first_failing_sha", "newest_failing_sha", "recovered"}


def replay(*paths: Path | str, fmt: str = "json", config: str | None = None,
           db: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "bot", "replay", "--format", fmt, *map(str, paths)]
    if db is not None:
        args += ["--db", str(db)]
    env = {k: v for k, v in os.environ.items() if k != "BOT_CONFIG"}
    if config is not None:
        env["BOT_CONFIG"] = config
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def alerts_of(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"alerts"}
    for alert in out["alerts"]:
        assert set(alert) >= ALERT_KEYS, alert
        assert alert["state"] in ("open", "resolved")
        for job in alert["jobs"]:
            assert set(job) >= JOB_KEYS, job
    return out["alerts"]


def essence(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the alerts say, without ids and wall times: for comparing two replays.

    Alerts late results took back entirely ("withdrawn": a live bot showed them for a
    while, then learnt better) are left out: they depend on what arrived when. So are
    withdrawn jobs of an alert that stands: listed in Slack, but no longer members.
    """
    return sorted((
        (a["state"], a["first_failing_sha"], a["last_green_sha"], tuple(a["suspects"]),
         a.get("resolved_sha"),
         tuple(sorted((j["key"], j["streak"], j["first_failing_sha"], j["newest_failing_sha"],
                       j["recovered"]) for j in a["jobs"] if not j.get("withdrawn"))))
        for a in alerts if not a.get("withdrawn")
    ), key=repr)


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path
