"""``POST /slack/events``: Slack's HTTP requests handed to the Bolt app off the event loop.

Bolt's own Starlette handler dispatches on the event loop, so one slow listener would
stall every endpoint; here dispatch runs in the thread pool and the body is capped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.adapter.starlette.handler import to_bolt_request, to_starlette_response
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as HttpRoute

from bot.web.limits import Refusal, error, read_body

if TYPE_CHECKING:
    from bot.runtime import Bot

NOT_CONFIGURED = "Slack is not configured (SLACK_BOT_TOKEN): the bot runs in console mode"


def routes(bot: Bot) -> list[HttpRoute]:
    async def slack_events(request: Request) -> Response:
        bolt = bot.bolt
        if bolt is None:
            return error(503, NOT_CONFIGURED)
        try:
            body = await read_body(request, bot.settings.max_body_bytes)
            try:
                bolt_request = to_bolt_request(request, body)
            except UnicodeDecodeError:
                raise Refusal(400, "body is not UTF-8") from None
        except Refusal as refusal:
            return refusal.response()
        bolt_response = await run_in_threadpool(bolt.dispatch, bolt_request)
        return to_starlette_response(bolt_response)

    return [HttpRoute("/slack/events", slack_events, methods=["POST"])]
