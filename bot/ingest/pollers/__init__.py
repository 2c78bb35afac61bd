"""Pollers that pull CI results on a schedule: GitHub Actions and PyTorch HUD.

``register_jobs`` adds each configured one (``GITHUB_TOKEN``, ``HUD_URL``) to the scheduler.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.ingest.pollers.github import GitHubPoller
from bot.ingest.pollers.hud import HudPoller

if TYPE_CHECKING:
    from bot.runtime import Bot


def register_jobs(bot: Bot) -> None:
    settings = bot.settings
    if settings.github_token:
        bot.scheduler.every("github-poller", settings.github_poll_interval,
                            GitHubPoller(bot).poll_once)
    if settings.hud_url:
        bot.scheduler.every("hud-poller", settings.hud_poll_interval, HudPoller(bot).poll_once)
