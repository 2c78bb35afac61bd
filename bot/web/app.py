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

from bot.web import github, grafana, slack
from bot.web.limits import error

if TYPE_CHECKING:
    from bot.runtime import Bot


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
        "slack_events": "enabled" if bot.bolt is not None else "disabled: " + slack.NOT_CONFIGURED,
    }


def create_app(bot: Bot) -> Starlette:
    for source, text in configuration(bot).items():
        if text.startswith("disabled") and source.endswith("webhook"):
            bot.health.note(source.replace("_", "-"), text)

    async def healthz(request: Request) -> JSONResponse:
        report: dict[str, Any] = bot.health_report()
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
    return app
