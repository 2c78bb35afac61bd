"""The ASGI application: every HTTP endpoint of the bot in one Starlette app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route as HttpRoute

if TYPE_CHECKING:
    from bot.runtime import Bot


def create_app(bot: Bot) -> Starlette:
    async def healthz(request: Request) -> JSONResponse:
        report = bot.health_report()
        return JSONResponse(report, status_code=200 if report["ok"] else 503)

    routes = [HttpRoute("/healthz", healthz, methods=["GET"])]
    app = Starlette(routes=routes)
    app.state.bot = bot
    return app
