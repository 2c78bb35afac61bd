"""The running bot: one object that wires settings, store, ingest, Slack and the scheduler.

Tests build it with their own settings and clock; ``python -m bot serve`` builds it
from the environment.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.bisect.service import Bisects
from bot.config import Settings, check_slack, secret_values
from bot.health import Health, TooOldNotices
from bot.health_checks import HealthChecks
from bot.ingest import pollers
from bot.ingest.evidence import EvidenceReader
from bot.ingest.pipeline import Ingestor
from bot.lanes import Lanes
from bot.retry.automatic import AutoRetries
from bot.retry.service import Retries
from bot.schedule import Scheduler
from bot.slack import people
from bot.slack.client import SlackApi, WebApi
from bot.slack.console import ConsoleApi
from bot.slack.digest import DIGEST_INTERVAL_S, run_digest
from bot.slack.identity import BotIdentity
from bot.slack.listing import routes_by_channel
from bot.slack.reminders import NUDGE_INTERVAL_S, run_nudges
from bot.slack.sender import Sender
from bot.slack.triage import Triage
from bot.store import outbox, retention
from bot.store.db import Store

if TYPE_CHECKING:
    from bot.slack.bolt_app import SocketLink

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600


def utc_now() -> datetime:
    return datetime.now(UTC)


class Bot:
    """Everything one ``serve`` process runs, built from settings; ``start``/``stop`` threads."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = utc_now,
                 sender_options: dict[str, Any] | None = None,
                 console_write: Callable[[str], None] | None = None) -> None:
        """``console_write`` receives console mode's printed messages (default: stdout)."""
        check_slack(settings)
        self.settings = settings
        self.clock = clock
        self.health = Health()
        self.store = Store(settings.database_path)
        self.lanes = Lanes.open()
        self.routes = {r.name: r for r in settings.routes}
        self.console = not settings.slack_bot_token
        self.slack_api: SlackApi = (
            ConsoleApi(console_write) if self.console
            else WebApi(settings.slack_bot_token or "", settings.slack_api_url,
                        timeout=settings.slack_timeout))
        self.default_channel = settings.slack_channel or ("console" if self.console else None)
        # the console has no rate limit to respect: pacing would only slow the trial down
        pacing = {"pace_s": 0.0} if self.console else {}
        self.sender = Sender(
            self.store, self.slack_api, self.routes, self.health,
            default_channel=self.default_channel, console=self.console,
            **{"in_doubt_s": settings.slack_timeout, "lease_ttl_s": settings.sender_lease_ttl,
               **pacing, **(sender_options or {})})
        self.ingestor = Ingestor(self.store, settings.routes, clock, on_change=self.alerts_changed,
                                 on_too_old=TooOldNotices(self.health, clock),
                                 read_logs=bool(settings.github_token))
        # failed jobs' logs and suspects' files, read in the background (GITHUB_TOKEN)
        self.evidence = EvidenceReader(self)
        self.scheduler = Scheduler(self.store, self.health, clock)
        self.bisects = Bisects(
            self.store, self.routes, clock, self.health,
            github_api_url=settings.github_api_url, github_token=settings.github_token,
            on_change=self.alerts_changed, ingest_results=self.ingestor.results,
            user_by_email=lambda email: people.user_id_by_email(self.slack_api, email),
            secrets=secret_values(settings))
        self.retries = Retries(self.store, self.routes, clock, self.health,
                               github_api_url=settings.github_api_url,
                               github_token=settings.github_token,
                               on_change=self.alerts_changed)
        # one rerun of a job's first failure, for routes with auto_retry (GITHUB_TOKEN)
        self.auto_retries = AutoRetries(self.store, self.routes, clock, self.health,
                                        github_api_url=settings.github_api_url,
                                        github_token=settings.github_token,
                                        retries=self.retries, on_change=self.alerts_changed)
        self.triage = Triage(self.store, self.routes, self.slack_api, clock, self.alerts_changed,
                             self.bisects, self.retries)
        # who the bot is in Slack, learnt in the background (never inside a request)
        self.identity = None if self.console else BotIdentity(
            self.slack_api, settings.slack_bot_token or "", self.health)
        self.checks = HealthChecks(
            self.store, self.health, disk_free_min_bytes=settings.disk_free_min_bytes,
            lock_alarm_s=settings.db_lock_alarm, sender_stuck_after_s=settings.sender_stuck_after,
            sender_stuck_for=self.sender.stuck_for)
        self.bolt = None
        self._socket: SocketLink | None = None
        self._started = False

    def alerts_changed(self, alert_ids: set[int]) -> None:
        """Called after a transaction changed these alerts: the sender has work."""
        self.sender.wake(alert_ids)

    def start(self) -> None:
        """Check what can be checked, then start the threads; a failed check starts nothing."""
        pending = self.store.pending_migrations()
        if pending:
            raise RuntimeError(f"DATABASE_PATH: {self.settings.database_path} needs migrations "
                               f"{', '.join(pending)}: run `python -m bot migrate` "
                               "(`make migrate`) first")
        self.store.check_writable()
        from bot.slack.bolt_app import SocketLink, build_bolt_app

        self.bolt = build_bolt_app(self)
        self._register_jobs()  # checks every route's bisect settings: before any thread runs
        if self.console:
            log.info("console mode: no SLACK_BOT_TOKEN, Slack messages are printed on stdout")
        if self.identity is not None:
            self.identity.start()
        self.sender.start()
        if self.settings.scheduler_enabled:
            self.scheduler.start()
        if self.bolt is not None and self.settings.slack_app_token:
            self._socket = SocketLink(self.bolt, self.settings.slack_app_token, self.health)
            self._socket.start()
        self._started = True

    def _register_jobs(self) -> None:
        """Each part of the bot that needs periodic work adds its jobs here."""
        pollers.register_jobs(self)
        if self.settings.github_token:
            self.scheduler.every("evidence", self.settings.github_log_interval,
                                 self.evidence.run_once)
        self.scheduler.every("nudges", NUDGE_INTERVAL_S, self.run_nudges)
        if self.settings.digest_hour_utc is not None:
            self.scheduler.every("digest", DIGEST_INTERVAL_S, self.post_digest)
        self.bisects.register(self.scheduler)
        self.retries.register(self.scheduler)
        self.auto_retries.register(self.scheduler)
        self.scheduler.every("retention", RETENTION_INTERVAL_S, self.run_retention,
                             first_in=60.0)

    def run_retention(self, now: datetime | None = None) -> retention.Pruned:
        """Forget what a year of operation may forget (the scheduler's "retention" job)."""
        s = self.settings
        policy = retention.Policy(deliveries_days=s.retention_deliveries_days,
                                  keep_commits=s.retention_commits,
                                  resolved_days=s.retention_resolved_days)
        pruned = retention.run(self.store, policy, now or self.clock())
        if pruned:
            log.info("retention: deleted %s", ", ".join(f"{n} {t}" for t, n in
                                                        sorted(pruned.rows.items())))
        self.health.ok("job:retention", note=f"last pass deleted {pruned.rows or 'nothing'}")
        return pruned

    def run_nudges(self, now: datetime | None = None) -> dict[int, str]:
        """Reminders, escalations and snooze expiry due now (the scheduler's "nudges" job)."""
        return run_nudges(self.store, self.routes, now or self.clock(), self.alerts_changed)

    def post_digest(self, now: datetime | None = None) -> list[str]:
        """Each channel's daily digest, once its hour has passed (the "digest" job)."""
        return run_digest(self.store, self.slack_api,
                          routes_by_channel(self.routes, self.default_channel),
                          self.settings.digest_hour_utc, now or self.clock())

    def stop(self, timeout: float | None = None) -> None:
        """Stop every thread, let work in flight finish within ``timeout``, release leases.

        Order matters: nothing new is taken (Socket Mode, request lanes), then scheduled
        jobs and the sender finish what they are doing, and only then is the store
        closed, so no job writes to a closed database.
        """
        budget = self.settings.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        if self._socket is not None:
            self._socket.stop()
        if self.identity is not None:
            self.identity.stop()
        self.lanes.close(wait=False)
        self.scheduler.stop(timeout=max(deadline - time.monotonic(), 0.1))
        self.bisects.local.join(max(deadline - time.monotonic(), 0.1))
        self.sender.stop(timeout=max(deadline - time.monotonic(), 0.1))
        self.store.close()

    def health_report(self) -> dict[str, Any]:
        """What /healthz shows; blocking (disk, SQLite): run it off the event loop."""
        report: dict[str, Any] = {"ok": True}
        try:
            backlog = outbox.backlog(self.store.db)  # fails when the database does
            report["database"] = "ok"
            report["outbox"] = backlog
        except Exception as exc:  # any failure here means unhealthy, whatever its type
            report["database"] = f"error: {exc}"
            report["ok"] = False
        report["slack"] = "console" if self.console else (
            ("socket mode" + ("" if self._socket is None or self._socket.connected
                              else " (not connected)"))
            if self.settings.slack_app_token else "http")
        report.update(self.health.snapshot())
        checked, facts = self.checks.run()
        report["problems"].update(checked)
        report["vitals"] = facts
        if report["problems"]:
            report["ok"] = False
        return report
