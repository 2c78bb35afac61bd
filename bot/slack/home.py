"""The App Home tab: the open alerts a person can act on, theirs first, with the alert buttons.

Everyone may acknowledge, assign and snooze, so every open alert is listed; the
buttons are the alert message's own, so a click here runs the same action.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bot.domain.route import Route
from bot.slack import listing
from bot.slack.client import SlackApi
from bot.slack.mrkdwn import truncate
from bot.slack.render import MAX_SECTION_TEXT, render_parent
from bot.slack.view import AlertView
from bot.store import triage as triage_store
from bot.store.db import Store

HOME_ALERTS = 25  # three blocks each, within a Home view's 100 blocks
Block = dict[str, Any]


def home_view(entries: list[tuple[AlertView, str]], notice: str | None = None,
              hidden: int = 0) -> dict[str, Any]:
    """The Home view for ``entries`` (an alert's view and its summary line), in order."""
    blocks: list[Block] = []
    if notice:
        blocks.append(_section(notice))
    count = len(entries) + hidden
    heading = "No open alerts: trunk looks healthy." if not count else (
        f"*{count} open alert{'s' if count != 1 else ''}* (assigned to you first)")
    blocks.append(_section(heading))
    for view, line in entries:
        blocks.append({"type": "divider"})
        blocks.append(_section(line))
        actions = next((b for b in render_parent(view)[1] if b["type"] == "actions"), None)
        if actions is not None:
            blocks.append(actions)
    if hidden:
        blocks.append({"type": "context", "elements": [
            {"type": "mrkdwn", "text": f"_+{hidden} more; `list all` shows them._"}]})
    return {"type": "home", "blocks": blocks}


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text,
                                                                          MAX_SECTION_TEXT)}}


def publish_home(store: Store, routes: Mapping[str, Route], api: SlackApi, now: datetime,
                 user: str, notice: str | None = None) -> None:
    """Render and publish ``user``'s Home tab (``views.publish``)."""
    db = store.db
    ids = triage_store.open_alert_ids(db)
    views = listing.sort_for_user(listing.alert_views(db, routes, ids), user)
    shown = views[:HOME_ALERTS]
    entries = [(view, listing.summary_line(db, api, view, now)) for view in shown]
    api.call("views.publish", user_id=user,
             view=home_view(entries, notice, len(views) - len(shown)))
