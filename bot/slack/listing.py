"""Which alerts a person sees from a channel or the App Home, and links to their threads.

Read-only: the slash command's ``list``/``show`` and the Home tab build on these.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

import sqlite_utils

from bot.domain.alert_ids import short_id
from bot.domain.route import Route
from bot.slack.client import SlackApi, SlackError
from bot.slack.mrkdwn import link
from bot.slack.present import build_alert_view
from bot.slack.render import render_alert_summary
from bot.slack.view import AlertView
from bot.store import outbox
from bot.store import triage as triage_store

log = logging.getLogger(__name__)

LIST_LIMIT = 20


def channel_of(route: Route | None, default_channel: str | None) -> str | None:
    """The channel a route's alerts are posted to: its own, else the default."""
    return (route.channel if route else None) or default_channel


def routes_of_channel(routes: Mapping[str, Route], default_channel: str | None,
                      channel: str) -> list[str]:
    return [name for name, route in routes.items()
            if channel_of(route, default_channel) == channel]


def routes_by_channel(routes: Mapping[str, Route],
                      default_channel: str | None) -> dict[str, list[str]]:
    """Each channel that gets alerts, with the names of the routes posting there."""
    by_channel: dict[str, list[str]] = {}
    for name, route in routes.items():
        channel = channel_of(route, default_channel)
        if channel:
            by_channel.setdefault(channel, []).append(name)
    return by_channel


@dataclass(frozen=True, slots=True)
class Target:
    """The alert a command is about, or why none could be chosen."""

    alert_id: int | None
    problem: str | None = None


def target(db: sqlite_utils.Database, channel_routes: Collection[str],
           alert_id: int | None) -> Target:
    """The given alert, or the one open alert of the channel's routes when none is given."""
    if alert_id is not None:
        return Target(alert_id)
    ids = triage_store.open_alert_ids(db, channel_routes)
    if len(ids) == 1:
        return Target(ids[0])
    if not ids:
        return Target(None, "No alert is open for this channel, so give an alert id "
                            "(`list all` shows every open alert).")
    shown = ", ".join(f"`{short_id(i)}`" for i in ids[:10])
    return Target(None, f"{len(ids)} alerts are open for this channel ({shown}): "
                        "say which one.")


def alert_views(db: sqlite_utils.Database, routes: Mapping[str, Route],
                ids: Collection[int]) -> list[AlertView]:
    return [view for alert_id in ids
            if (view := build_alert_view(db, alert_id, routes)) is not None]


def permalink(db: sqlite_utils.Database, api: SlackApi, alert_id: int) -> str | None:
    """A link to the alert's message (its thread), once the parent is posted."""
    posted = outbox.posted_parent(db, alert_id)
    if posted is None:
        return None
    channel, ts = posted
    try:
        response = api.call("chat.getPermalink", channel=channel, message_ts=ts)
    except SlackError as exc:
        log.warning("no permalink for alert %s: %s", alert_id, exc)
        return None
    return response.get("permalink")


def sort_for_user(views: list[AlertView], user: str) -> list[AlertView]:
    """Assigned to the user first, then acknowledged by them, then the rest; newest first."""
    def rank(view: AlertView) -> tuple[int, float]:
        mine = 0 if view.assignee == user else 1 if view.acked_by == user else 2
        return mine, -view.opened_at.timestamp()

    return sorted(views, key=rank)


def summary_line(db: sqlite_utils.Database, api: SlackApi, view: AlertView,
                 now: datetime) -> str:
    """Short id, title, state, age, owner, and a link to the thread when there is one."""
    line = render_alert_summary(view, now)
    url = permalink(db, api, view.id)
    return f"{line} · {link(url, 'thread')}" if url else line
