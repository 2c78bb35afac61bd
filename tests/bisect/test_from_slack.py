"""Bisect from Slack against the running bot: the Bisect button, ``/inductor bisect [cancel]``,
the parent's status and the thread, with runs dispatched to a fake GitHub."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.slack.command_text import Command, UsageError, parse_command
from tests.fakes.github_api import FakeGitHub
from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import HF, broken_trunk
from tests.support.slack_side import USERS, SlackSide, start, text_of

TOKEN = "ghs-slack-bisect"
REPO = "pytorch/pytorch"
BISECT = {"backend": "github", "workflow": "inductor.yml", "ref": "trunk/{sha}", "k": 3,
          "inputs": {"jobs-to-include": "{job}"}}


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    with FakeGitHub(token=TOKEN) as fake:
        fake.add_workflow(REPO, ".github/workflows/inductor.yml")
        yield fake


@pytest.fixture
def slack(tmp_path: Path, github: FakeGitHub) -> Iterator[SlackSide]:
    trunk = broken_trunk(12, first_bad=5)
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"]}) as fake, \
            start(tmp_path, fake, trunk, 7, route={"bisect": BISECT},
                  github_api_url=github.url, github_token=TOKEN) as side:
        yield side


def finish_runs(github: FakeGitHub, side: SlackSide, culprit: int = 5) -> None:
    for dispatch in github.dispatches:
        run = github.runs[dispatch.run_id]
        if run.status == "completed":
            continue
        broken = side.trunk.shas.index(run.head_sha) >= culprit
        for name in HF:
            failing = broken and name == HF[1]
            github.add_job(run, name.partition(" / ")[2],
                           conclusion="failure" if failing else "success")
        run.status, run.conclusion = "completed", "failure" if broken else "success"


def test_bisect_button_runs_a_bisect_to_the_culprit(slack: SlackSide, github: FakeGitHub) -> None:
    assert "may bisect" in slack.click("alert_bisect", "U3").text()  # not a resolver
    assert slack.click("alert_bisect", "U1").http.status_code == 200
    parent = slack.wait_parent(":mag: *Bisecting*: starting, 1 suspect")
    assert '"action_id": "alert_bisect_cancel"' in text_of(parent)
    assert '"action_id": "alert_bisect"' not in text_of(parent)
    assert "Bisect started by" in slack.wait_reply("Bisect started")
    assert "already running on A1" in slack.command("bisect A1").text()

    bot = slack.bot
    bot.bisects.advance()  # round 1: the culprit and its parent, to confirm
    assert len(github.dispatches) == 2
    slack.wait_parent(f"*Bisecting*: round 1, 1 suspect, confirming {slack.trunk.shas[5][:10]}")
    finish_runs(github, slack)
    slack.running.clock.advance(minutes=1)
    bot.bisects.advance()
    found = slack.wait_reply("found the culprit")
    assert slack.trunk.shas[5][:7] in found and "Next step: comment `@pytorchbot revert" in found
    assert ":white_check_mark: passes" in slack.wait_reply("Bisect round 1")
    parent = slack.wait_parent(":red_circle: *Open*")
    assert '"action_id": "alert_bisect"' in text_of(parent)


def test_bisect_cancel_by_command_and_by_button(slack: SlackSide, github: FakeGitHub) -> None:
    assert "Bisecting *inductor" in slack.command("bisect A1 huggingface").text()
    slack.bot.bisects.advance()
    answer = slack.command("bisect cancel", user="U2").text()  # U2 may: in the resolver group
    assert "Cancelled the bisect of A1 after 2 runs" in answer
    assert "Bisect cancelled by" in slack.wait_reply("Bisect cancelled")
    slack.wait_parent(":red_circle: *Open*")
    assert "No bisect is running on A1" in slack.command("bisect cancel A1").text()

    slack.click("alert_bisect", "U1")
    slack.wait_parent("*Bisecting*")
    slack.click("alert_bisect_cancel", "U1")
    slack.wait_parent(":red_circle: *Open*")
    assert slack.kinds().count("bisect_cancelled") == 2
    assert slack.kinds().count("bisect_started") == 2
    unknown = slack.command("bisect A1 nothing-like-it").text()
    assert "No job of A1 matches `nothing-like-it`" in unknown


@pytest.mark.parametrize(("text", "expected"), [
    ("bisect cancel", Command(verb="bisect_cancel")),
    ("bisect cancel A3", Command(verb="bisect_cancel", alert_id=3)),
    ("bisect A3 cancel", Command(verb="bisect_cancel", alert_id=3)),
    ("bisect A3 inductor_timm", Command(verb="bisect", alert_id=3, job="inductor_timm")),
])
def test_bisect_cancel_grammar(text: str, expected: Command) -> None:
    assert parse_command("/inductor", text) == expected


def test_bisect_cancel_takes_only_an_id() -> None:
    refused = parse_command("/inductor", "bisect cancel A3 now")
    assert isinstance(refused, UsageError)
    assert "`bisect cancel` takes only an alert id" in refused.message
    assert "bisect cancel [ID]" in refused.message  # the usage line shows both forms
