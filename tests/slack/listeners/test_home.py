"""The App Home tab over signed HTTP: the open alerts, mine first, with the alert's buttons."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.slack_api import FakeSlack
from tests.support.alerts import (
    CHANNEL,
    break_timm,
    broken_trunk,
    feed,
)
from tests.support.slack_side import (
    showing,
    start,
    text_of,
)


def test_app_home_lists_alerts_mine_first_with_links_and_buttons(tmp_path: Path,
                                                                fake: FakeSlack) -> None:
    trunk = broken_trunk(timm_known_until=8)
    break_timm(trunk, 9, 11)
    with start(tmp_path, fake, trunk, 8) as side:
        feed(side.bot, trunk, 11, side.running.clock)
        fake.wait_for(lambda: len(fake.messages(CHANNEL)) == 2)
        side.command("assign A1 <@U2>").text()
        assert side.event({"type": "app_home_opened", "user": "U2", "tab": "home"},
                          "Ev1").status_code == 200
        home = fake.wait_for(lambda: fake.home_view("U2"))
        sections = [b["text"]["text"] for b in home["blocks"] if b["type"] == "section"]
        assert sections[0] == "*2 open alerts* (assigned to you first)"
        assert sections[1].startswith("`A1`") and "<@U2>" in sections[1]
        assert sections[2].startswith("`A2`") and "— unowned, open for" in sections[2]
        assert all("https://fake-slack.example/archives/C0TEST/p" in s for s in sections[1:])
        actions = [b for b in home["blocks"] if b["type"] == "actions"]
        assert [b["block_id"] for b in actions] == ["alert:1:actions", "alert:2:actions"]

        # Slack's retry of the same event is not handled twice
        assert side.event({"type": "app_home_opened", "user": "U2", "tab": "home"}, "Ev1",
                          retry=1).status_code == 200
        with pytest.raises(TimeoutError):
            fake.wait_for(lambda: len(fake.calls_to("views.publish")) > 1, timeout=0.5)

        # the Home buttons are the alert's buttons: a click acts and re-publishes
        side.click("alert_ack", "U2", source=home, in_home=True)
        republished = fake.wait_for(
            showing(lambda: fake.home_view("U2"), "You acknowledged A1"))
        assert "alert_unack" in text_of(republished)
        assert side.row(1)["acked_by"] == "U2"
        side.click("alert_ack", "U3", source=home, in_home=True)
        refused = fake.wait_for(showing(lambda: fake.home_view("U3"), "already"))
        assert "<@U2> already acknowledged A1" in text_of(refused)
