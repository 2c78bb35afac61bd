"""``POST /github/webhook``: signed ``push`` and ``workflow_job`` deliveries, stored before acked.

Order of checks: size cap (413), signature (401, nothing read further), JSON and
payload shape (400), then one transaction records the delivery id and runs the
ingest. A redelivery finds its id and changes nothing. Deliveries the bot does not
watch (other events, other branches, unwatched workflows) get 202 and store nothing.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from bot.domain.model import JobResult
from bot.domain.payload import PayloadError
from bot.ingest.github_payloads import PushEvent, parse_push, parse_workflow_job
from bot.ingest.pipeline import IngestReport
from bot.lanes import LaneTimeout
from bot.store import deliveries, history
from bot.web.limits import RequestRefused, error, parse_json, read_body
from bot.web.signatures import GITHUB_SIGNATURE_HEADER, verify_github

if TYPE_CHECKING:
    from bot.runtime import Bot

log = logging.getLogger(__name__)

SOURCE = "github-webhook"
NOT_CONFIGURED = ("GITHUB_WEBHOOK_SECRET is not set: the GitHub webhook refuses every request "
                  "until it is")
NULL_SHA = "0" * 40
RETRY_AFTER_S = 60


@dataclass
class Ack:
    """The answer to a delivery, decided inside the transaction that stored it."""

    status: int
    body: dict[str, Any]
    alerts: set[int] = field(default_factory=set)


class GitHubWebhook:
    """Verifies, parses and ingests GitHub deliveries for one bot."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def handle(self, request: Request) -> Response:
        secret = self.bot.settings.github_webhook_secret
        if not secret:
            return error(503, NOT_CONFIGURED)
        try:
            body = await read_body(request, self.bot.settings.max_body_bytes)
            if not verify_github(secret, body, request.headers.get(GITHUB_SIGNATURE_HEADER)):
                self.bot.health.error(SOURCE, "refused a request: X-Hub-Signature-256 missing "
                                              "or wrong (is GITHUB_WEBHOOK_SECRET the same?)")
                raise RequestRefused(401, "X-Hub-Signature-256 is missing or does not match")
            event = request.headers.get("x-github-event", "").strip()
            if not event:
                raise RequestRefused(400, "X-GitHub-Event header is missing")
            delivery = (request.headers.get("x-github-delivery", "").strip()
                        or "sha256:" + hashlib.sha256(body).hexdigest())
            payload = parse_json(_json_part(body, request.headers.get("content-type", "")))
            if event == "ping":
                self.bot.health.ok(SOURCE)
                return JSONResponse({"ok": True, "pong": True})
            parsed = _parse(event, payload)
        except RequestRefused as refusal:
            return refusal.response()
        if parsed is None or not self._watched(parsed):
            return JSONResponse({"ok": True, "ignored": True, "event": event}, status_code=202)
        try:
            ack = await self.bot.lanes.webhooks.run(
                self._store, event, delivery, parsed,
                deadline=self.bot.settings.webhook_store_timeout)
        except LaneTimeout as late:
            # the database is held (another process's long write, a slow disk): answer
            # in time rather than let GitHub time out; a job already started still
            # commits whole, and a redelivery of it is then a duplicate
            log.warning("GitHub delivery %s (%s) not stored within %gs (%s); answered 503",
                        delivery, event, self.bot.settings.webhook_store_timeout,
                        "still running" if late.started else "dropped from the queue")
            self.bot.health.error(SOURCE, f"a {event} delivery waited too long to be stored")
            return RequestRefused(
                503, "the database is busy and the delivery was not stored in time; redeliver "
                     "it (a redelivery of a stored one is a duplicate)",
                retry_after=RETRY_AFTER_S).response()
        except sqlite3.Error as exc:  # nothing was stored: the transaction rolled back
            log.exception("GitHub delivery %s (%s) could not be stored", delivery, event)
            self.bot.health.error(SOURCE, f"storing a {event} delivery failed: {exc}")
            return RequestRefused(503, "the delivery could not be stored; redeliver it",
                           retry_after=RETRY_AFTER_S).response()
        self.bot.health.ok(SOURCE)
        if ack.alerts:
            self.bot.alerts_changed(ack.alerts)
        return JSONResponse(ack.body, status_code=ack.status)

    def _watched(self, parsed: PushEvent | JobResult) -> bool:
        ingestor = self.bot.ingestor
        if isinstance(parsed, PushEvent):
            return not parsed.deleted and ingestor.watches_commits(parsed.repo, parsed.branch)
        return ingestor.watches_result(parsed)

    def _store(self, event: str, delivery: str, parsed: PushEvent | JobResult) -> Ack:
        """One transaction: the ledger row and the ingest commit together, or not at all."""
        with self.bot.store.transaction() as db:
            if not deliveries.claim(db, "github", delivery, event, self.bot.clock()):
                return Ack(200, {"ok": True, "duplicate": True})
            if isinstance(parsed, PushEvent):
                report = self._push(parsed)
                body = {"ok": True, "event": event, "commits_placed": report.commits_placed}
            else:
                report = self.bot.ingestor.results([parsed])
                waiting = [b for b in sorted(self.bot.ingestor.branches(parsed.repo))
                           if history.get_commit(db, parsed.repo, b, parsed.sha) is None]
                body = {"ok": True, "event": event, "results_stored": report.results_stored,
                        "waiting_for_order": bool(waiting)}
            body["alerts"] = sorted(report.alerts)
            deliveries.settle(db, "github", delivery, "stored", _detail(report))
        return Ack(200, body, set(report.alerts))

    def _push(self, push: PushEvent) -> IngestReport:
        """Place a push's commits after ``before``.

        A forced push is logged and its commits are placed after ``before`` when that
        commit is known, else at the head. Commits the force-push dropped from the
        branch stay in history (they are not unplaced), so a streak may still count
        cells on them; a rewrite of trunk is rare enough to leave to the operator.
        """
        assert push.branch is not None
        if push.forced:
            log.warning("forced push to %s@%s: %s -> %s (%d commits); dropped commits stay in "
                        "history", push.repo, push.branch, push.before[:12], push.after[:12],
                        len(push.commits))
        after = None if push.before == NULL_SHA else push.before
        report = self.bot.ingestor.commits(push.repo, push.branch, push.commits, after=after)
        self.bot.ingestor.changed_files(  # the suspects' files, for ranking them
            push.repo, [(c.sha, c.files, c.message) for c in push.changes], "push")
        return report


def _json_part(body: bytes, content_type: str) -> bytes:
    """The JSON document: the body, or its ``payload`` field when the hook is form-encoded.

    A GitHub webhook can be set to ``application/x-www-form-urlencoded``; the signature
    still covers the raw body, so this runs after verification.
    """
    if not content_type.lower().startswith("application/x-www-form-urlencoded"):
        return body
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise RequestRefused(400, "form-encoded body is malformed") from None
    if "payload" not in fields:
        raise RequestRefused(400, "form-encoded body has no payload field")
    return fields["payload"][-1].encode("utf-8")


def _parse(event: str, payload: Any) -> PushEvent | JobResult | None:
    try:
        if event == "push":
            return parse_push(payload)
        if event == "workflow_job":
            return parse_workflow_job(payload)
    except PayloadError as exc:
        raise RequestRefused(400, f"malformed {event} payload: {exc}") from None
    return None


def _detail(report: IngestReport) -> str:
    return (f"commits_placed={report.commits_placed} results_stored={report.results_stored} "
            f"alerts={sorted(report.alerts)}")


def routes(bot: Bot) -> list[HttpRoute]:
    return [HttpRoute("/github/webhook", GitHubWebhook(bot).handle, methods=["POST"])]
