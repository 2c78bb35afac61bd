"""#16 done: a webhook-fed incident with GITHUB_TOKEN shows each failing job's key error line,
groups jobs failing the same way, labels infrastructure failures as such, ranks suspects with
reasons, and a Retry click reruns the failed jobs and updates the alert when results arrive.

Everything over loopback HTTP: signed GitHub webhooks into the real server, logs and reruns
from the fake GitHub, the alert in the fake Slack, clicks signed as Slack signs them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import CHANNEL, FAST_SENDER, slack_settings
from tests.support.ci_world import World, failing_test_log, log_of, shard
from tests.support.server import GITHUB_SECRET, Clock, running_bot
from tests.support.signing import github_request
from tests.support.slack_side import SECRET, USERS, SlackSide

TOKEN = "ghp_incident_token"
HF = [shard("inductor_huggingface", i, 2) for i in (1, 2)]
TIMM = shard("inductor_timm", 1, 1)
TORCHBENCH = shard("inductor_torchbench", 1, 1)
TRITON = "torch/_inductor/codegen/triton.py"
ERROR = "RuntimeError: bad tiling for node buf3"
HF_TEST = "inductor/test_torchinductor.py::GPUTests::test_conv2d_cuda"
TIMM_LOG = log_of("Traceback (most recent call last):",
                  '  File "/opt/conda/lib/python3.10/site-packages/torch/_inductor/ir.py", '
                  "line 3, in f",
                  "AssertionError: accuracy check failed for <!channel> *model*",
                  "##[error]Process completed with exit code 1.")
RUNNER_LOST = log_of("##[error]The runner has received a shutdown signal. This can happen "
                     "when the runner service is stopped.")
_deliveries = itertools.count(1)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        yield fake


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"]}) as fake:
        yield fake


def build(github: FakeGitHub) -> World:
    """Green at 0; 1..4 land without results (one of them broke Inductor); 4..6 fail."""
    world = World(github)
    world.commit("[docs] typo", ("docs/source/index.rst",))
    world.run(0, {HF[0]: ("success", None), HF[1]: ("success", None),
                  TIMM: ("success", None), TORCHBENCH: ("success", None)})
    world.commit("[inductor] faster lowering", ("torch/_inductor/ir.py",))
    world.commit("[inductor] new tiling heuristics", (TRITON, "torch/_inductor/config.py"))
    world.commit("[dynamo] guard cleanup", ("torch/_dynamo/guards.py",))
    world.commit("Update README", ("README.md",))
    for i in (4, 5, 6):
        if i > 4:
            world.commit(f"unrelated {i}", (f"c10/core/f{i}.cpp",))
        world.run(i, {HF[0]: ("failure", failing_test_log(HF_TEST, ERROR, TRITON)),
                      HF[1]: ("failure", failing_test_log(HF_TEST, ERROR, TRITON)),
                      TIMM: ("failure", TIMM_LOG),
                      TORCHBENCH: ("failure", RUNNER_LOST)})
    return world


def text_of(message: dict[str, Any]) -> str:
    """Every string of a message (its text and blocks), as a person would read them."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            found.append(node)
        elif isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({"text": message.get("text", ""), "blocks": message.get("blocks", [])})
    return "\n".join(found)


def send(side: SlackSide, event: str, payload: dict[str, Any]) -> None:
    body, headers = github_request(event, payload, f"d-{next(_deliveries)}", GITHUB_SECRET)
    response = side.http.post("/github/webhook", content=body, headers=headers)
    assert response.status_code == 200, response.text


def read_evidence(side: SlackSide) -> None:
    """The evidence job until its queue is empty (it reads a few logs per tick)."""
    for _ in range(10):
        report = side.bot.scheduler.run_now("evidence")
        if not report.logs_read and not report.files_read:  # type: ignore[attr-defined]
            return
    raise AssertionError("the evidence queue never emptied")


def test_webhook_incident_shows_evidence_and_retry_updates_it(
        tmp_path: Path, github: FakeGitHub, slack: FakeSlack) -> None:
    world = build(github)
    clock = Clock(world.time(6) + timedelta(hours=2))
    settings = slack_settings(slack.url, SECRET, resolvers=("U1", "S0FIXERS"))
    with running_bot(tmp_path, clock, sender_options=FAST_SENDER, github_token=TOKEN,
                     github_api_url=github.url, **settings) as running:
        side = SlackSide(running, slack, trunk=None)  # type: ignore[arg-type]
        send(side, "push", world.push(0, 6))
        for job in sorted(github.jobs):
            send(side, "workflow_job", world.job(job))
        slack.wait_for(lambda: slack.messages(CHANNEL))
        read_evidence(side)

        parent = side.wait_parent("same error in 2 jobs", "Infrastructure failures",
                                  "most likely first")
        text = text_of(parent)
        # each failing job's key error line, jobs failing alike grouped
        assert f"`FAILED [0.5s] {HF_TEST} - {ERROR}` — same error in 2 jobs" in text
        assert "inductor_huggingface 1/2" in text and "inductor_huggingface 2/2" in text
        assert "AssertionError: accuracy check failed for &lt;!channel&gt;" in text
        assert "<!channel>" not in text, "CI text stays inert"
        # the infrastructure failure is labelled apart (torchbench made no streak)
        assert "• runner lost — <" in text and "inductor_torchbench 1/1" in text
        assert "test (inductor_torchbench)" not in text
        # it had joined before its logs were read, and left once they said infrastructure
        assert "failed only for infrastructure reasons (runner lost)" in side.wait_reply(
            "infrastructure reasons")
        # flaky or real, with the evidence
        assert ":dart: looks real: the same error on 3 failing commits in a row" in text
        # suspects ranked with reasons: the commit touching the traceback's file first
        culprit = world.shas[2][:7]
        assert text.index(f"|{culprit}>") < text.index(f"|{world.shas[1][:7]}>")
        assert (f"↳ touches `{TRITON}`, named in the traceback (innermost frame)") in text

        # Retry: only resolvers may; the click reruns the newest failing commit's failed jobs
        refused = side.click("alert_retry", user="U5")
        assert "Only" in refused.text() and "retry" in refused.text()
        side.click("alert_retry", user="U1")
        side.wait_parent(":repeat: *Retried* (asked by <@U1>)")
        side.bot.scheduler.run_now("retries")
        rerun = github.requests_to(f"/repos/pytorch/pytorch/actions/runs/{world.runs[6]}/"
                                   "rerun-failed-jobs", method="POST")
        assert len(rerun) == 1, "the run's failed jobs go in one request"
        side.wait_parent("running")
        again = side.click("alert_retry", user="U2")  # a resolver through the user group
        assert "already retried" in again.text()
        assert len(github.reruns) == 4  # the run's four failed jobs, each once

        # the reruns finish: huggingface fails the same way again, timm passes
        for old, new in list(github.reruns):
            name = github.jobs[old].name
            log = github.logs.get(old)
            conclusion = "success" if name == TIMM else "failure"
            github.finish_job(new, conclusion, log=log if conclusion == "failure" else None)
            send(side, "workflow_job", world.job(new))
        read_evidence(side)
        side.bot.scheduler.run_now("retries")
        parent = side.wait_parent("1/2 :x: failed again", "1/1 :white_check_mark: passed")
        text = text_of(parent)
        assert "inductor_huggingface 1/2 :x: failed again" in text
        assert "inductor_timm 1/1 :white_check_mark: passed" in text
        assert "failed again on a rerun at" in text, "the rerun is evidence it is real"
        reply = side.wait_reply("Retry results")
        assert "failed again" in reply and "passed" in reply
        assert any("asked to retry 3 failed jobs" in t for t in side.thread())
