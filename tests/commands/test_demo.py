"""``python -m bot demo`` end to end: the example incident, played and printed as Slack shows it.

It runs as a newcomer runs it (a subprocess, no Slack, no settings) and the output is read
step by step: each step shows what that part of the incident made the bot say, and nothing
more. The same files replay offline to the same alert.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "inductor-incident"
HF = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_huggingface)"
TIMM = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_timm)"
TORCHBENCH = "inductor / cuda12.8-py3.10-gcc9-sm86 / test (inductor_torchbench)"
CULPRIT = "[inductor] Fuse pointwise epilogues into matmul templates (#150123)"


def clean_env() -> dict[str, str]:
    """Only what a shell has: no Slack token, no bot settings leaking in from the test run."""
    return {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}


@pytest.fixture(scope="module")
def steps() -> dict[int, str]:
    done = subprocess.run([sys.executable, "-m", "bot", "demo"], cwd=ROOT, env=clean_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "", "the story is the whole output: no log lines, no warnings"
    parts = re.split(r"^━━ Step (\d+) · \d\d:\d\d UTC ━+$", done.stdout, flags=re.M)
    assert parts[0].startswith("inductor-bot demo: a broken-trunk incident")
    numbered = {int(parts[i]): parts[i + 1] for i in range(1, len(parts), 2)}
    assert list(numbered) == list(range(1, 12))
    return numbered


def test_history_and_a_first_red_commit_post_nothing(steps: dict[int, str]) -> None:
    assert "HUD poller reads trunk's recent history" in " ".join(steps[1].split())
    assert steps[1].rstrip().endswith("(nothing posted)")
    assert "One red commit is not a streak yet." in " ".join(steps[2].split())
    assert steps[2].rstrip().endswith("(nothing posted)")


def test_three_red_commits_open_one_alert_with_jobs_logs_range_and_suspect(
        steps: dict[int, str]) -> None:
    step = steps[3]
    assert step.count("new message") == 1, "one alert, one parent"
    parent = step[step.index("── #C0INDUCTOR · new message"):step.index("edited ──")]
    lines = parent.splitlines()
    assert lines[1] == "[P2] broken-inductor: 1 Inductor job failing for 3+ commits on trunk"
    assert lines[2] == "🔴 Open · nobody on it yet"
    job = next(line for line in lines if HF in line)
    # the first red commit is the range's: a job line does not repeat it
    assert re.fullmatch(rf"• ❌ {re.escape(HF)} failing for 3 commits · log\[1\]", job)
    assert "[1] https://github.com/pytorch/pytorch/actions/runs/" in parent
    assert f"• 2ba98c1[3] {CULPRIT} — alice-dev (#150123[4])" in lines
    assert any(line.startswith("Regression range: last green 3b6b702[") for line in lines)
    assert ("[ Acknowledge ]  [ Assign… ▾ ]  [ Snooze… ▾ ]  [ Bisect ]  [ Retry failed jobs ]  "
            "[ Resolve ]") in lines
    # the on-call is paged in a new message of the thread, the one mention of the opening
    assert "  ↳ @S0SHERIFFS 🚨 New alert for the on-call: [P2] broken-inductor" in step
    # timm joins in the same first minutes: the parent's edit says so, the thread stays quiet
    assert "+ [P2] broken-inductor: 2 Inductor jobs failing for 3+ commits on trunk" in step
    assert "started failing" not in step


def test_a_flaky_rerun_posts_nothing_and_a_late_third_job_joins(steps: dict[int, str]) -> None:
    assert "flaky" in steps[4] and steps[4].rstrip().endswith("(nothing posted)")
    assert f"  ↳ ➕ {TORCHBENCH} started failing at 2ba98c1[1]" in steps[5]
    assert "+ [P2] broken-inductor: 3 Inductor jobs failing for 3+ commits on trunk" in steps[5]
    assert "new message" not in steps[5], "it joined the alert: no second parent"


def test_grafana_joins_the_alert_instead_of_paging_apart(steps: dict[int, str]) -> None:
    step = steps[6]
    assert "+ 🔔 Grafana: Inductor jobs failing for three commits in a row on Trunk" in step
    assert "  ↳ 🔔 Grafana alert firing: Inductor jobs failing for three commits" in step
    assert "new message" not in step


def test_the_sheriff_lists_acks_and_assigns_from_the_slash_command(
        steps: dict[int, str]) -> None:
    listed, acked = steps[7].split("── answer to /inductor ack")
    assert "── answer to /inductor list · only @U0SAM sees this ──" in listed
    assert "`A1` [P2] broken-inductor: 3 Inductor jobs failing for 3+ commits on trunk" in listed
    assert "👀 You acknowledged A1" in acked
    assert "- 🔴 Open · nobody on it yet\n+ 👀 Acknowledged by @U0SAM" in acked
    assert "  ↳ 👀 Acknowledged by sam" in acked
    assert "👤 Assigned A1 to @U0ALICE; they were notified in the alert's thread." in steps[8]
    assert "+ 👤 Assigned to @U0ALICE · acknowledged by @U0SAM" in steps[8]
    assert "  ↳ 👤 @U0ALICE: sam assigned this alert to you" in steps[8]


def test_the_revert_recovers_each_job_and_resolves_the_alert(steps: dict[int, str]) -> None:
    step = steps[9]
    replies = re.findall(r"  ↳ (.*)", step)
    assert replies == [f"✅ {HF} recovered at 3160c60[1]", f"✅ {TIMM} recovered at 3160c60[1]",
                       f"✅ {TORCHBENCH} recovered at 3160c60[1]",
                       "✅ Resolved after 3h19m: jobs green again at 3160c60[1]"]
    assert "+ ✅ Resolved after 3h19m, jobs green again at 3160c60[" in step
    assert "  ↳ 🔔 Grafana alert resolved" in steps[10]
    assert "No open alerts for this channel" in steps[11]


def test_the_demo_output_names_the_offline_replay_that_gives_the_same_alert(
        steps: dict[int, str]) -> None:
    command = steps[11].strip().splitlines()[-1].split()
    assert command[1:4] == ["-m", "bot", "replay"]
    done = subprocess.run([sys.executable, *command[1:3], "replay", "--format", "json",
                           *command[4:]], cwd=ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    [alert] = json.loads(done.stdout)["alerts"]
    assert alert["state"] == "resolved" and alert["suspect_count"] == 1
    assert sorted(job["key"] for job in alert["jobs"]) == [HF, TIMM, TORCHBENCH]
    assert all(job["recovered"] for job in alert["jobs"])
