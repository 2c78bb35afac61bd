"""CI text reaches every Slack surface as literal text: channel, thread, ephemerals, App Home.

A job named with a Slack link (``<https://evil.example|Re-authenticate here>``) and
formatting characters, and commit titles full of them, go through the real server and
the fake Slack; no surface may render them as a link, a ping or formatting.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from bot.slack.mrkdwn import literal
from tests.support.alerts import CHANNEL
from tests.support.slack_side import fake_workspace, start
from tests.support.trunk import Trunk

EVIL = "<https://evil.example|Re-authenticate here>"
JOB = f"inductor / cuda12.8 / test ({EVIL} *bold* _it_ ~gone~ `tick`, 1, 1, linux.g5)"
GOOD = "inductor / cuda12.8 / test (inductor_timm, 1, 1, linux.g5)"
TITLE = "*Urgent*: _please_ ~ignore~ `this` <!channel> <https://evil.example|log in>"


def hostile_trunk() -> Trunk:
    trunk = Trunk.linear(10, [JOB, GOOD])
    trunk.titles = [TITLE] * 10
    for i in range(10):
        trunk.set(i, GOOD, "success")
        trunk.set(i, JOB, "failure" if i >= 5 else "success",
                  line=f"E   {EVIL} *boom* `x`")
    return trunk


def strings(value: Any) -> list[str]:
    """Every string in a Slack payload (text, blocks, views), wherever it is nested."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def assert_literal(payload: Any, where: str) -> None:
    """No link to evil.example, no broadcast, no markup from CI anywhere in ``payload``."""
    for text in strings(payload):
        assert "<https://evil.example" not in text, (where, text)
        assert "<!channel>" not in text, (where, text)
        outside_code = re.sub(r"`[^`]*`", "", text)  # inside a code span nothing formats
        outside_code = re.sub(r"<https?://[^|>]*", "<", outside_code)  # nor inside a URL
        for markup in ("*bold*", "_it_", "~gone~", "*Urgent*", "_please_", "~ignore~",
                       "*boom*"):
            assert markup not in outside_code, (where, markup, text)
        # code spans the bot makes itself are fine; CI backticks must not open new ones
        assert "`tick`" not in text and "`this`" not in text, (where, text)


def test_job_name_with_a_link_is_literal_on_every_surface(tmp_path: Path) -> None:
    trunk = hostile_trunk()
    bisect = {"backend": "github", "workflow": "inductor.yml"}
    with fake_workspace() as fake, start(tmp_path, fake, trunk, 8, route={"bisect": bisect},
                                         github_token="ghs-unused",
                                         github_api_url="http://127.0.0.1:9") as side:
        parent = side.parent()
        assert "Re-authenticate here" in json.dumps(parent)  # shown, as text
        assert_literal(parent, "parent")
        side.click("alert_ack", "U2")
        side.wait_reply("Acknowledged")
        assert_literal(fake.replies(CHANNEL, parent["ts"]), "thread")

        listed = side.command("list").text()
        assert "`A1`" in listed
        shown = side.command("show A1")
        [answer] = fake.wait_for(lambda: fake.responses(shown.key))
        assert "Re-authenticate here" in json.dumps(answer)
        bisect_answer = side.command("bisect A1 no-such-job").text()
        assert "Re-authenticate here" in bisect_answer  # the job list names it
        side.event({"type": "app_home_opened", "user": "U2", "tab": "home"}, "EvHome")
        home = fake.wait_for(lambda: fake.home_view("U2"))
        for where, payload in [("list", listed), ("show", answer),
                               ("bisect", bisect_answer), ("home", home)]:
            assert_literal(payload, where)


def test_literal_neutralises_formatting_and_keeps_escaping() -> None:
    assert literal("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    shown = literal("*bold* _it_ ~s~ `code` inductor_huggingface __init__")
    assert not re.search(r"[*~`]", shown)
    assert "inductor_huggingface" in shown  # inside a word an underscore cannot format
    assert "_it_" not in shown and "__init__" not in shown
