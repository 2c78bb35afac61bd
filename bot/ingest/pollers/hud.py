"""The HUD poller: ``{HUD_URL}/api/hud/{owner}/{repo}/{branch}/{page}`` pages into live ingest.

Page 1 is read every tick, since HUD rows of known commits fill in as jobs finish;
further pages only while they hold no commit the store already knows. All pages of a
branch are ingested in one transaction with the cursor, the same way replay does it.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import httpx

from bot.domain.model import Commit, JobResult
from bot.domain.payload import PayloadError
from bot.github.rest import USER_AGENT, ApiUnavailable, get, refuse
from bot.ingest.hud import parse_hud_page
from bot.ingest.pollers.tick import PollReport, run_tick
from bot.store import history
from bot.store import pollers as poller_store

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

NAME = "hud-poller"
BOT_HEADER = "x-hud-internal-bot"
MAX_CATCHUP_PAGES = 20  # after a long outage, older commits are left to a replay


class HudPoller:
    """Polls HUD (``HUD_URL``, optional ``HUD_TOKEN``) for every route's repo and branch."""

    def __init__(self, bot: Bot, timeout: float = 30.0) -> None:
        self.bot = bot
        self.timeout = timeout

    def targets(self) -> list[tuple[str, str]]:
        return sorted({(r.repo, r.branch) for r in self.bot.ingestor.routes})

    def poll_once(self) -> PollReport:
        return run_tick(self.bot, NAME, self._tick)

    def _client(self) -> httpx.Client:
        settings = self.bot.settings
        headers = {"User-Agent": USER_AGENT}
        if settings.hud_token:
            headers[BOT_HEADER] = settings.hud_token
        return httpx.Client(base_url=(settings.hud_url or "").rstrip("/"),
                            timeout=httpx.Timeout(self.timeout), headers=headers)

    def _tick(self, report: PollReport) -> None:
        with self._client() as client:
            for repo, branch in self.targets():
                self._branch(client, repo, branch, report)

    def _branch(self, client: httpx.Client, repo: str, branch: str, report: PollReport) -> None:
        settings = self.bot.settings
        per_page = settings.hud_per_page
        db = self.bot.store.db
        first_start = not history.has_commits(db, repo, branch)
        max_pages = (max(math.ceil(settings.hud_backfill_commits / per_page), 1) if first_start
                     else MAX_CATCHUP_PAGES)
        newest_first: list[Commit] = []
        results: list[JobResult] = []
        seen: set[str] = set()
        reached_known = False
        for number in range(1, max_pages + 1):
            response = get(client, f"/api/hud/{repo}/{branch}/{number}",
                           params={"per_page": per_page})
            report.requests += 1
            refuse(response, self.bot.clock())
            try:
                page = parse_hud_page(response.json(), repo, branch)
            except (ValueError, PayloadError) as exc:
                raise ApiUnavailable(f"HUD page {number} of {repo}@{branch} is unusable: "
                                  f"{exc}") from None
            report.pages += 1
            if page.skipped:
                report.invalid += len(page.skipped)
                log.warning("HUD page %d of %s@%s: %d row(s) or cell(s) skipped, first: %s",
                            number, repo, branch, len(page.skipped), page.skipped[0])
            # pages are read at different instants: a commit landing in between shifts
            # the next page, so rows repeat (never go missing); keep each commit once
            newest_first += [c for c in page.commits if c.sha not in seen]
            seen.update(c.sha for c in page.commits)
            results += page.results
            if len(page.commits) < per_page:
                break
            if history.commit_positions(db, repo, branch, [c.sha for c in page.commits]):
                reached_known = True
                break
        else:
            if not first_start and not reached_known:
                log.warning("HUD %s@%s: %d pages without reaching a known commit; older ones "
                            "are not read", repo, branch, max_pages)
        now = self.bot.clock()
        with self.bot.store.transaction() as db:
            report.add(self.bot.ingestor.commits(repo, branch, newest_first[::-1]))
            report.add(self.bot.ingestor.results(results))
            if newest_first:
                poller_store.save_cursor(db, f"{NAME}:{repo}@{branch}", newest_first[0].sha, now)
