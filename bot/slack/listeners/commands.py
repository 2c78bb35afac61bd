"""The slash command (any name the manifest gives it): ``help``, ``list``, ``show`` and the
triage actions, answered ephemerally.

Pure answers (help, usage errors) go back in the acknowledgement itself; anything that
reads the database or calls Slack runs after ``ack()`` and answers via ``respond``.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.domain.alert_ids import short_id
from bot.slack import listing
from bot.slack.command_text import Command, UsageError, help_text, parse_command, usage_message
from bot.slack.mrkdwn import link
from bot.slack.render import render_parent
from bot.slack.triage import UNKNOWN_CODES, Request
from bot.store import triage as triage_store

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

EPHEMERAL = "ephemeral"


def register(app: App, bot: Bot) -> None:
    @app.command(re.compile(r"^/.+"))
    def on_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        name = str(command.get("command") or "/inductor")
        text = str(command.get("text") or "")
        parsed = parse_command(name, text)
        if isinstance(parsed, UsageError):
            ack(text=parsed.message, response_type=EPHEMERAL)
            return
        if parsed.verb == "help":
            ack(text=help_text(name), response_type=EPHEMERAL)
            return
        ack()
        try:
            message = answer(bot, parsed, name=name, text=text,
                             user=str(command.get("user_id") or ""),
                             channel=str(command.get("channel_id") or ""))
        except Exception:  # the person must hear something, whatever broke
            log.exception("slash command %r failed", f"{name} {text}")
            message = {"text": ":x: Something went wrong; the bot's log has the details."}
        respond(**message, response_type=EPHEMERAL)


def answer(bot: Bot, command: Command, *, name: str, text: str, user: str,
           channel: str) -> dict[str, Any]:
    """The ephemeral message answering a well-formed command (``text`` and maybe ``blocks``)."""
    if command.verb == "list":
        return _list(bot, channel, command.all)
    chosen = listing.target(bot.store.db, _channel_routes(bot, channel), command.alert_id)
    if chosen.alert_id is None:
        return {"text": usage_message(name, text, command.verb, chosen.problem or "")}
    if command.verb == "show":
        return _show(bot, chosen.alert_id, name, text)
    assignee = user if command.user == "me" else command.user
    result = bot.triage.perform(Request(
        verb=command.verb, alert_id=chosen.alert_id, actor=user,  # type: ignore[arg-type]
        assignee=assignee, snooze=command.snooze, reason=command.reason, job=command.job))
    if not result.ok and result.code in UNKNOWN_CODES:
        return {"text": usage_message(name, text, command.verb, result.text)}
    return {"text": result.text}


def _channel_routes(bot: Bot, channel: str) -> list[str]:
    return listing.routes_of_channel(bot.routes, bot.default_channel, channel)


def _list(bot: Bot, channel: str, everything: bool) -> dict[str, Any]:
    routes = None if everything else _channel_routes(bot, channel)
    db = bot.store.db
    ids = triage_store.open_alert_ids(db, routes)
    where = "" if everything else " for this channel"
    if not ids:
        hint = "" if everything else " (`list all` shows every route's)"
        return {"text": f"No open alerts{where}{hint}."}
    now = bot.clock()
    views = listing.alert_views(db, bot.routes, ids[:listing.LIST_LIMIT])
    lines = [f"*{len(ids)} open alert{'s' if len(ids) != 1 else ''}{where}:*"]
    lines += [listing.summary_line(db, bot.slack_api, view, now) for view in views]
    if len(ids) > len(views):
        lines.append(f"_+{len(ids) - len(views)} older ones not shown._")
    return {"text": "\n".join(lines)}


def _show(bot: Bot, alert_id: int, name: str, text: str) -> dict[str, Any]:
    [view] = listing.alert_views(bot.store.db, bot.routes, [alert_id]) or [None]
    if view is None:
        problem = f"There is no alert {short_id(alert_id)}."
        return {"text": usage_message(name, text, "show", problem)}
    fallback, blocks = render_parent(view)
    url = listing.permalink(bot.store.db, bot.slack_api, alert_id)
    if url:
        blocks = [*blocks[:49], {"type": "context", "elements": [
            {"type": "mrkdwn", "text": link(url, "Open the alert's thread")}]}]
    return {"text": fallback, "blocks": blocks}
