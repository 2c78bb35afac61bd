"""``POST /grafana/webhook``: Grafana alert notifications become external alerts on incidents.

Authenticated by a shared token (``Authorization: Bearer`` or ``X-Grafana-Token``) or
by HMAC in ``X-Grafana-Alerting-Signature``. Grafana sends no delivery id, so the
body's digest is the ledger key: an identical notification is a duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from bot.domain.grafana import GrafanaNotification
from bot.domain.payload import PayloadError
from bot.ingest.grafana import parse_grafana
from bot.lanes import LaneTimeout
from bot.store import deliveries, external
from bot.web.limits import RequestRefused, error, parse_json, read_body
from bot.web.signatures import (
    GRAFANA_SIGNATURE_HEADER,
    GRAFANA_TOKEN_HEADER,
    verify_bearer,
    verify_grafana_hmac,
)

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

SOURCE = "grafana-webhook"
RETRY_AFTER_S = 60  # Grafana retries a failed notification by itself
NOT_CONFIGURED = ("neither GRAFANA_WEBHOOK_TOKEN nor GRAFANA_WEBHOOK_SECRET is set: the Grafana "
                  "webhook refuses every request until one is")


class GrafanaWebhook:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    def _authenticated(self, request: Request, body: bytes) -> bool:
        settings = self.bot.settings
        by_token = bool(settings.grafana_webhook_token) and verify_bearer(
            settings.grafana_webhook_token or "", request.headers.get("authorization"),
            request.headers.get(GRAFANA_TOKEN_HEADER))
        by_hmac = bool(settings.grafana_webhook_secret) and verify_grafana_hmac(
            settings.grafana_webhook_secret or "", body,
            request.headers.get(GRAFANA_SIGNATURE_HEADER))
        return by_token or by_hmac

    async def handle(self, request: Request) -> Response:
        settings = self.bot.settings
        if not (settings.grafana_webhook_token or settings.grafana_webhook_secret):
            return error(503, NOT_CONFIGURED)
        try:
            body = await read_body(request, settings.max_body_bytes)
            if not self._authenticated(request, body):
                self.bot.health.error(SOURCE, "refused a request without a valid token or "
                                              "signature")
                raise RequestRefused(401, "missing or wrong Grafana token or signature")
            try:
                notification = parse_grafana(parse_json(body))
            except PayloadError as exc:
                raise RequestRefused(400, f"malformed Grafana notification: {exc}") from None
        except RequestRefused as refusal:
            return refusal.response()
        delivery = "sha256:" + hashlib.sha256(body).hexdigest()
        try:
            answer, incidents = await self.bot.lanes.webhooks.run(
                self._store, delivery, notification,
                deadline=self.bot.settings.webhook_store_timeout)
        except LaneTimeout:
            log.warning("Grafana notification %s not stored in time; answered 503", delivery)
            self.bot.health.error(SOURCE, "a notification waited too long to be stored")
            return RequestRefused(503, "the database is busy; the notification was not stored",
                           retry_after=RETRY_AFTER_S).response()
        except sqlite3.Error as exc:  # nothing was stored: the transaction rolled back
            log.exception("Grafana notification %s could not be stored", delivery)
            self.bot.health.error(SOURCE, f"storing a notification failed: {exc}")
            return RequestRefused(503, "the notification could not be stored",
                           retry_after=RETRY_AFTER_S).response()
        self.bot.health.ok(SOURCE)
        if incidents:
            self.bot.alerts_changed(incidents)
        return JSONResponse(answer)

    def _store(self, delivery: str,
               notification: GrafanaNotification) -> tuple[dict[str, Any], set[int]]:
        now = self.bot.clock()
        with self.bot.store.transaction() as db:
            if not deliveries.claim(db, "grafana", delivery, notification.status, now):
                return {"ok": True, "duplicate": True}, set()
            report = external.apply_notification(db, notification.alerts,
                                                 self.bot.ingestor.routes, now)
            outcomes = [{"fingerprint": o.fingerprint, "outcome": o.action,
                         "incident": o.incident} for o in report.outcomes]
            deliveries.settle(db, "grafana", delivery, "stored",
                              ", ".join(f"{o['fingerprint']}:{o['outcome']}" for o in outcomes))
        return {"ok": True, "alerts": outcomes}, report.incidents


def routes(bot: Bot) -> list[HttpRoute]:
    return [HttpRoute("/grafana/webhook", GrafanaWebhook(bot).handle, methods=["POST"])]
