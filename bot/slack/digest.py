"""The optional daily digest per channel (``DIGEST_HOUR_UTC``): the last day in five lines.

It is one channel message a day, not an alert event, so it is posted directly; the
``digests`` row is claimed before posting, so a restart or a second tick never posts
it twice (a crash mid-post can lose one digest, which is the cheaper mistake).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from bot.domain.alert_ids import short_id
from bot.domain.durations import format_duration
from bot.slack.client import SlackApi, SlackError
from bot.slack.mrkdwn import literal, truncate
from bot.store import digest as digest_store
from bot.store.db import Store
from bot.store.digest import DigestStats

log = logging.getLogger(__name__)

DIGEST_INTERVAL_S = 300
WINDOW = timedelta(days=1)


def render_digest(stats: DigestStats, until: datetime) -> str:
    def median(seconds: float | None) -> str:
        return "n/a" if seconds is None else format_duration(timedelta(seconds=seconds))

    lines = [
        f":newspaper: *CI alert digest*: the 24 h up to {until:%Y-%m-%d %H:%M} UTC",
        f"• Opened: *{stats.opened}* · resolved: *{stats.resolved}* · "
        f"still open: *{stats.still_open}*",
        f"• Median time to acknowledge: *{median(stats.median_ack_s)}* · "
        f"to resolve: *{median(stats.median_resolve_s)}*",
    ]
    if stats.longest:
        streaks = ", ".join(
            f"`{short_id(s.alert_id)}` {truncate(literal(s.job_key), 120)} ({s.length} commits)"
            for s in stats.longest)
        lines.append(f"• Longest streaks: {streaks}")
    return "\n".join(lines)


def run_digest(store: Store, api: SlackApi, channels: Mapping[str, Sequence[str]],
               hour: int | None, now: datetime) -> list[str]:
    """Post today's digest to each channel once ``DIGEST_HOUR_UTC`` (``hour``) has passed;
    ``channels`` maps each channel to its routes. Returns the channels posted to."""
    if hour is None or now.hour < hour:
        return []
    day = now.date().isoformat()
    until = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    posted = []
    for channel, routes in channels.items():
        with store.transaction() as db:
            if not digest_store.claim(db, channel, day, now):
                continue
        stats = digest_store.digest_stats(store.db, routes, until - WINDOW, until)
        try:
            api.call("chat.postMessage", channel=channel,
                     text=render_digest(stats, until), unfurl_links=False)
        except SlackError as exc:
            log.warning("digest for %s failed: %s; retrying next tick", channel, exc)
            with store.transaction() as db:
                digest_store.release(db, channel, day)
            continue
        posted.append(channel)
    return posted
