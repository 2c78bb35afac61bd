"""The ASGI application: every HTTP endpoint of the bot in one Starlette app.

Endpoint families live in their own modules (``github``, ``grafana``, ``slack``); this
module assembles them, serves ``/healthz`` and answers routing errors as JSON.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from bot.lanes import LaneTimeout
from bot.retry import automatic
from bot.web import github, grafana, slack
from bot.web.limits import BodyBudget, error

if TYPE_CHECKING:
    from bot.runtime import Bot

HEALTH_DEADLINE_S = 5.0


def configuration(bot: Bot) -> dict[str, str]:
    """Which inputs are on, and why the others are off.

    Reported apart from ``problems``: a bot fed only by the HUD poller is healthy
    without webhooks, but an operator wondering why pushes are ignored must see why.
    """
    s = bot.settings
    return {
        "github_webhook": "enabled" if s.github_webhook_secret else
        "disabled: " + github.NOT_CONFIGURED,
        "grafana_webhook": "enabled" if (s.grafana_webhook_token or s.grafana_webhook_secret)
        else "disabled: " + grafana.NOT_CONFIGURED,
        "github_poller": f"every {s.github_poll_interval}s" if s.github_token else
        "disabled: GITHUB_TOKEN is not set",
        "hud_poller": f"every {s.hud_poll_interval}s" if s.hud_url else
        "disabled: HUD_URL is not set",
        "slack_events": ("disabled: " + slack.NOT_CONFIGURED if bot.bolt is None
                         else "enabled (console mode: answers are printed)" if bot.console
                         else "enabled"),
        "auto_retries": _auto_retries(bot),
    }


def _auto_retries(bot: Bot) -> str:
    """Routes that ask for automatic retries get none without ``GITHUB_TOKEN``: say so,
    naming them, rather than leave an operator wondering why nothing reruns."""
    names = sorted(r.name for r in bot.settings.routes if r.auto_retry)
    if not names:
        return "off: no route sets auto_retry"
    many = len(names) > 1
    which = f"route{'s' if many else ''} {', '.join(names)}"
    if not bot.settings.github_token:
        return (f"disabled: GITHUB_TOKEN is not set ({which} {'ask' if many else 'asks'} "
                "for auto_retry)")
    return f"every {automatic.TICK_SECONDS}s for {which}"


def create_app(bot: Bot) -> Starlette:
    for source, text in configuration(bot).items():
        if text.startswith("disabled") and source.endswith("webhook"):
            bot.health.note(source.replace("_", "-"), text)

    async def healthz(request: Request) -> JSONResponse:
        # the checks read the disk and SQLite: never on the event loop, and in a lane
        # of their own so a hung database shows as a 503 instead of a hung request
        try:
            report: dict[str, Any] = await bot.lanes.health.run(bot.health_report,
                                                                deadline=HEALTH_DEADLINE_S)
        except LaneTimeout:
            report = {"ok": False, "problems": {
                "health": f"the health checks did not finish within {HEALTH_DEADLINE_S:g}s "
                          "(the database or the disk is hanging)"}}
        report["config"] = configuration(bot)
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        response = error(exc.status_code, str(exc.detail))
        response.headers.update(exc.headers or {})  # 405 keeps its Allow header
        return response

    routes = [HttpRoute("/healthz", healthz, methods=["GET"]),
              *github.routes(bot), *grafana.routes(bot), *slack.routes(bot)]
    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    app.state.bot = bot
    app.state.body_budget = BodyBudget(bot.settings.max_pending_body_bytes)
    app.state.body_timeout = bot.settings.body_timeout
    return app
