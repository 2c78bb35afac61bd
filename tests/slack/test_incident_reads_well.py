"""A whole incident through the real server, read as an on-call engineer reads it.

Two jobs broken by one commit, a Grafana alert attached, the route's on-call, owners,
dashboard and runbook configured: the on-call is paged once in a new message, the thread
carries no "started failing" noise for the first look, the links line names each link
once, the jobs share their workflow/build heading, and the list line reads as a phrase.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import HF, break_timm, broken_trunk
from tests.support.fixtures import fixture_json
from tests.support.server import GRAFANA_TOKEN
from tests.support.slack_side import USERS, start, text_of

ROUTE = {"oncall": ("S0ONCALL",), "owners": ("U5",),
         "grafana_url": "https://pytorchci.grafana.net/d/inductor-trunk",
         "runbook_url": "https://github.com/pytorch/test-infra/wiki/Alerts"}


def test_an_incident_reads_without_noise(tmp_path: Path) -> None:
    trunk = broken_trunk(12, first_bad=5)
    break_timm(trunk, 5, 11)
    with FakeSlack(users=USERS, usergroups={"S0FIXERS": ["U2"], "S0ONCALL": ["U4"]},
                   usergroup_handles={"S0ONCALL": "inductor-oncall"}) as fake, \
            start(tmp_path, fake, trunk, 9, route=ROUTE) as side:
        firing = fixture_json("grafana", "alert.firing.json")
        answer = side.http.post("/grafana/webhook", content=json.dumps(firing).encode(),
                                headers={"Content-Type": "application/json",
                                         "Authorization": f"Bearer {GRAFANA_TOKEN}"})
        assert answer.status_code == 200, answer.text
        parent = side.wait_parent("2 Inductor jobs", "Grafana")
        page = side.wait_reply("<!subteam^S0ONCALL>")
        side.click("alert_ack", "U4")
        side.wait_reply("Acknowledged")

        thread = side.thread()
        assert thread[0] == page and sum("<!subteam" in t for t in thread) == 1
        assert not [t for t in thread if "started failing" in t]

        blocks = parent["blocks"]
        links = next(b["elements"][0]["text"] for b in blocks if b["type"] == "context"
                     and "|HUD>" in b["elements"][0]["text"])
        labels = re.findall(r"\|([^>]+)>", links)
        assert len(labels) == len(set(labels)), labels
        assert {"HUD", "Grafana dashboard", "Runbook"} <= set(labels)

        urls = re.findall(r"<(https?://[^|>]+)\|", text_of(parent))
        assert len(urls) == len(set(urls)), "a link repeated in the alert message"

        prefix = HF[0].rsplit(" / ", 1)[0]
        assert text_of(parent).count(prefix) == 1  # the jobs' shared heading, once
        assert "test (inductor_huggingface)" in text_of(parent)
        assert "test (inductor_timm)" in text_of(parent)

        listed = side.command("list").text()
        line = next(x for x in listed.splitlines() if x.startswith("`A1`"))
        assert "· open ·" not in line and "open · open" not in line
        assert re.search(r" — acknowledged by <@U4>, open for \d", line), line
