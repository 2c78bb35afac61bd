"""Real alerts for Slack tests: a broken trunk fed through the bot's own ingest path."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.domain.route import Route
from bot.ingest.hud import parse_hud_page
from bot.runtime import Bot
from tests.support.server import Clock
from tests.support.trunk import REPO, Trunk, sharded

CHANNEL = "C0TEST"
HF = sharded("inductor", "inductor_huggingface", 2)
TIMM = sharded("inductor", "inductor_timm", 1)
FAST_SENDER: dict[str, Any] = {"pace_s": 0.0, "backoff_base_s": 0.05, "backoff_max_s": 0.2,
                               "permanent_retry_s": 0.2, "idle_poll_s": 0.05,
                               "in_doubt_s": 0.05}


def broken_trunk(n: int = 12, first_bad: int = 5, timm_known_until: int | None = None) -> Trunk:
    """One huggingface shard fails from ``first_bad`` on; everything else passes.

    With ``timm_known_until`` the timm job has no results after that commit yet, so a
    test can make it fail later (``break_timm``) and join the open alert.
    """
    trunk = Trunk.linear(n, HF + TIMM)
    for i in range(n):
        for name in HF + TIMM:
            if name == HF[1] and i >= first_bad:
                trunk.set(i, name, "failure", line="RuntimeError: CUDA error")
            elif name in TIMM and timm_known_until is not None and i > timm_known_until:
                continue
            else:
                trunk.set(i, name, "success")
    return trunk


def break_timm(trunk: Trunk, first: int, last: int) -> None:
    for i in range(first, last + 1):
        trunk.set(i, TIMM[0], "failure", line="AssertionError: accuracy")


def feed(bot: Bot, trunk: Trunk, newest: int, clock: Clock) -> None:
    """Ingest HUD's view of commits up to ``newest``, 90 minutes after it landed."""
    page = parse_hud_page(trunk.hud_page(newest), REPO, "main")
    clock.now = trunk.times[newest] + timedelta(minutes=90)
    bot.ingestor.commits(REPO, "main", list(reversed(page.commits)))
    bot.ingestor.results(page.results)


def slack_settings(fake_url: str, secret: str = "test-signing-secret",
                   **route: Any) -> dict[str, Any]:
    """Settings overrides for a bot talking to a fake Slack, with one route to ``CHANNEL``."""
    return {
        "slack_bot_token": "xoxb-test",
        "slack_signing_secret": secret,
        "slack_api_url": fake_url + "/api/",
        "slack_channel": CHANNEL,
        "routes": (Route(channel=CHANNEL, **route),),
    }
