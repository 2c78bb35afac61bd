"""The alert message's buttons and menus (also shown in the App Home): one triage action each.

Every click is acknowledged at once. A click that changed the alert needs no answer:
the parent message is edited and the thread gets a reply. A refused click (someone
else was first, or the person may not) gets an ephemeral note; clicks in the Home tab
re-publish it with the note on top.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond

from bot.domain.alert_ids import parse_alert_number
from bot.domain.triage import Answer, parse_snooze
from bot.slack.client import SlackError
from bot.slack.home import publish_home
from bot.slack.triage import Request, Verb

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

BUTTONS: dict[str, Verb] = {
    "alert_ack": "ack",
    "alert_unack": "unack",
    "alert_bisect": "bisect",
    "alert_bisect_cancel": "bisect_cancel",
    "alert_resolve": "resolve",
    "alert_retry": "retry",
}
_BLOCK_ID = re.compile(r"^alert:([0-9]{1,9}):")

Handler = Callable[[Ack, dict[str, Any], dict[str, Any], Respond], None]


def register(app: App, bot: Bot) -> None:
    for action_id, verb in BUTTONS.items():
        app.action(action_id)(_handler(bot, lambda body, action, v=verb: _button(body, action, v)))
    app.action("alert_assign")(_handler(bot, _assign))
    app.action("alert_snooze")(_handler(bot, _snooze))


def _handler(bot: Bot, build: Callable[[dict[str, Any], dict[str, Any]], Request | str]
             ) -> Handler:
    def on_action(ack: Ack, body: dict[str, Any], action: dict[str, Any],
                  respond: Respond) -> None:
        ack()
        try:
            request = build(body, action)
            answer = (bot.triage.perform(request) if isinstance(request, Request)
                      else Answer(False, request, "bad_action"))
        except Exception:  # the person must hear something, whatever broke
            log.exception("action %s failed", action.get("action_id"))
            answer = Answer(False, ":x: Something went wrong; the bot's log has the details.")
        _tell(bot, body, answer, respond)

    return on_action


def _actor(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _button(body: dict[str, Any], action: dict[str, Any], verb: Verb) -> Request | str:
    alert_id = _int(action.get("value"))
    if alert_id is None:
        return "This button does not name an alert."
    return Request(verb=verb, alert_id=alert_id, actor=_actor(body))


def _assign(body: dict[str, Any], action: dict[str, Any]) -> Request | str:
    """The user picker has no value of its own: the alert id is in its block id."""
    match = _BLOCK_ID.match(str(action.get("block_id") or ""))
    user = action.get("selected_user")
    if match is None or not user:
        return "Pick a person to assign the alert to."
    return Request(verb="assign", alert_id=int(match.group(1)), actor=_actor(body),
                   assignee=str(user))


def _snooze(body: dict[str, Any], action: dict[str, Any]) -> Request | str:
    """Snooze options carry ``"<alert id>|<choice>"``, e.g. ``"12|2h"`` or ``"12|green"``."""
    value = str((action.get("selected_option") or {}).get("value") or "")
    alert, _, choice = value.partition("|")
    alert_id = _int(alert)
    try:
        spec = parse_snooze([choice])
    except ValueError as exc:
        return f"Cannot snooze: {exc}"
    if alert_id is None:
        return "This menu does not name an alert."
    return Request(verb="snooze", alert_id=alert_id, actor=_actor(body), snooze=spec)


def _int(value: object) -> int | None:
    """Strict: ``-1``, ``+1``, `` 1`` and ``١`` are not alert ids (``int()`` takes them all)."""
    return parse_alert_number(value)


def _tell(bot: Bot, body: dict[str, Any], answer: Answer, respond: Respond) -> None:
    """Answer where the click happened; a change in a channel message answers itself."""
    container = body.get("container") or {}
    user = _actor(body)
    if container.get("type") == "view":
        publish_home(bot.store, bot.routes, bot.slack_api, bot.clock(), user, notice=answer.text)
        return
    if answer.ok and not container.get("is_ephemeral"):
        return
    if body.get("response_url"):
        respond(text=answer.text, response_type="ephemeral", replace_original=False)
        return
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id")
    if channel and user:
        try:
            bot.slack_api.call("chat.postEphemeral", channel=channel, user=user,
                               text=answer.text)
        except SlackError as exc:
            log.warning("could not tell %s in %s: %s", user, channel, exc)
