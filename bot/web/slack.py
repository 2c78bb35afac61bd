"""``POST /slack/events``: Slack's HTTP requests checked, then handed to Bolt off the event loop.

Bolt's own Starlette handler dispatches on the event loop, so one slow listener would
stall every endpoint; here dispatch runs in the Slack lane (its own threads, apart from
webhook storage) and the body is capped. Bolt trusts a signed request to be shaped as
Slack shapes it, and answers 500 when it is not; the signature and the shape Bolt
relies on are checked here first, so a bad request gets a 401 or a 400 that says what
is wrong. A signature stops forgery, not replay: each click and command carries ids
Slack never reuses, and a request whose ids were seen before is acknowledged and
dropped (see ``Replays``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from slack_bolt.request.internals import parse_body
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from bot.slack.console import ConsoleAnswers, ConsoleApi
from bot.store import interactions
from bot.store.db import Store
from bot.web.limits import RequestRefused, error, json_problem, read_body
from bot.web.signatures import (
    SLACK_MAX_AGE_S,
    SLACK_SIGNATURE_HEADER,
    SLACK_TIMESTAMP_HEADER,
    verify_slack,
)

if TYPE_CHECKING:
    from bot.runtime import Bot

NOT_CONFIGURED = ("SLACK_SIGNING_SECRET is not set: the bot cannot check Slack's requests "
                  "(in console mode any value will do; sign requests with the same value)")
NOT_VERIFIED = ("X-Slack-Signature or X-Slack-Request-Timestamp is missing, wrong, or more "
                "than five minutes old")

# fields Bolt reads from every request, and the JSON types Slack sends them as
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,), "command": (str,), "callback_id": (str,), "response_url": (str,),
    "trigger_id": (str,), "user": (str, dict), "team": (str, dict), "channel": (str, dict),
    "enterprise": (str, dict), "event": (dict,), "view": (dict,), "message": (dict,),
    "previous_message": (dict,), "container": (dict,), "item": (dict,),
    "assistant_thread": (dict,), "function_data": (dict,), "authorizations": (list,),
    "actions": (list,),
}
_ACTION_TYPES = ("block_actions", "interactive_message")
CLAIM_WAIT_S = 0.3  # how long an acknowledgement may wait for the database to record its key

log = logging.getLogger(__name__)


def interaction_key(body: dict[str, Any]) -> str | None:
    """The ids Slack gives one click, command or submission, never reused; None for events.

    ``trigger_id`` is unique per user action; a click also carries its ``action_ts``.
    Events API deliveries are left alone: Slack retries those on purpose, and a
    replayed event only re-renders what is already there.
    """
    trigger = body.get("trigger_id")
    if not isinstance(trigger, str) or not trigger:
        return None
    if body.get("command"):
        return f"command:{trigger}"
    actions = body.get("actions") or []
    stamps = [str(a.get("action_ts") or "") for a in actions if isinstance(a, dict)]
    kind = str(body.get("type") or "interaction")
    return f"{kind}:{trigger}:{','.join(stamps)}"


class Replays:
    """Interaction keys seen in the last signature window, in memory and in SQLite.

    Memory answers at once for this process; the ``processed_interactions`` row makes
    the key known to every process on the database. The row is written before Bolt
    dispatches, waiting at most ``CLAIM_WAIT_S`` for the write lock: when another
    process holds it longer, the acknowledgement does not wait and memory alone decides.
    """

    def __init__(self, store: Store, window_s: float = SLACK_MAX_AGE_S * 2) -> None:
        self.store = store
        self.window_s = window_s
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str, now: float) -> bool:
        with self._lock:
            while self._seen and next(iter(self._seen.values())) < now - self.window_s:
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
        try:
            with self.store.transaction(wait_s=CLAIM_WAIT_S) as db:
                return interactions.first_time(db, key, datetime.fromtimestamp(now, UTC))
        except sqlite3.Error as exc:
            log.warning("interaction %s: not recorded in the database (%s); this process "
                        "remembers it", key, exc)
            return True


def shape_problem(body: Any) -> str | None:
    """What keeps Bolt from handling this (verified) request, or None when it can."""
    if not isinstance(body, dict):
        return "the body is not a JSON object or form"
    for name, types in _FIELD_TYPES.items():
        value = body.get(name)
        if value is not None and not isinstance(value, types):
            return f"`{name}` is not a {' or '.join(t.__name__ for t in types)}"
    if not all(isinstance(a, dict) for a in body.get("authorizations") or []):
        return "`authorizations` holds something other than objects"
    event = body.get("event")
    if event is not None:
        problem = shape_problem(event)
        if problem is not None or not isinstance(event.get("type"), str):
            return f"`event` is malformed: {problem or '`type` is not a string'}"
    if body.get("type") in _ACTION_TYPES:
        actions = body.get("actions")
        if not actions or not all(isinstance(a, dict) and isinstance(a.get("action_id"), str)
                                  and isinstance(a.get("block_id", ""), str) for a in actions):
            return "`actions` must be a non-empty list of actions with string ids"
    return None


def routes(bot: Bot) -> list[HttpRoute]:
    replays = Replays(bot.store)

    async def slack_events(request: Request) -> Response:
        bolt = bot.bolt
        if bolt is None:
            return error(503, NOT_CONFIGURED)
        try:
            body = await read_body(request, bot.settings.max_body_bytes)
            if not verify_slack(bot.settings.slack_signing_secret or "", body,
                                request.headers.get(SLACK_TIMESTAMP_HEADER),
                                request.headers.get(SLACK_SIGNATURE_HEADER), time.time()):
                raise RequestRefused(401, NOT_VERIFIED)
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            try:  # parsed exactly as Bolt will parse it, to check what Bolt will read
                parsed = parse_body(body.decode("utf-8"), content_type or None)
            except UnicodeDecodeError:
                raise RequestRefused(400, "body is not UTF-8") from None
            except ValueError as exc:  # JSON in the body or its payload field
                raise RequestRefused(400, f"body is not a Slack request: {exc}") from None
            except RecursionError:
                raise RequestRefused(400, "body is not a Slack request: nested too "
                                          "deeply") from None
            problem = json_problem(parsed) or shape_problem(parsed)
            if problem is not None:
                raise RequestRefused(400, f"not a request Slack sends: {problem}")
        except RequestRefused as refusal:
            return refusal.response()
        key = interaction_key(parsed)
        if key is not None and not await bot.lanes.slack.run(replays.first_time, key,
                                                             time.time()):
            log.warning("replayed Slack request %s acknowledged and ignored", key)
            return Response(status_code=200)
        bolt_request = to_bolt_request(request, body)
        answers = None
        if isinstance(bot.slack_api, ConsoleApi):
            # console mode: answers are printed, and a command's goes back in this response
            answers = ConsoleAnswers(bot.slack_api, parsed)
            bolt_request.context["respond"] = answers
        bolt_response = await bot.lanes.slack.run(bolt.dispatch, bolt_request)
        if answers is not None:
            answers.acknowledged(str(bolt_response.body or ""))
            answer = answers.http_answer()
            if bolt_response.status == 200 and not bolt_response.body and answer is not None:
                return JSONResponse(answer)
        return to_starlette_response(bolt_response)

    return [HttpRoute("/slack/events", slack_events, methods=["POST"])]
