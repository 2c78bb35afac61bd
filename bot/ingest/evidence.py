"""The evidence reader: failed jobs' logs and suspects' changed files, read in the background.

A scheduler job (``evidence``), never the webhook or the Slack sender: each tick reads a
few queued logs (``GET .../actions/jobs/{id}/logs``, the redirect followed, only the tail
kept), picks their key lines, classifies and signs them, and stores the result; then it
asks the commits API which files the open alerts' suspects touched. Everything it needs
is queued in SQLite, so a restart loses nothing; a rate limit postpones the queue.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from bot.domain.failure_classes import classify
from bot.domain.failure_lines import extract
from bot.domain.model import JobResult
from bot.domain.signatures import signature
from bot.github import rest
from bot.github.rest import ApiRateLimited, ApiUnavailable, Gone
from bot.store import alerts as alert_store
from bot.store import evidence as store

if TYPE_CHECKING:
    import httpx

    from bot.runtime import Bot

log = logging.getLogger(__name__)

NAME = "evidence"
LOGS_PER_TICK = 10
FILES_PER_TICK = 20
SUSPECTS_LOOKED_UP = 50  # per open alert, newest first: wider ranges rank the rest unknown
FIRST_RETRY = timedelta(minutes=1)


@dataclass
class EvidenceReport:
    """What one tick did (tests assert on it; ``/healthz`` shows its summary)."""

    logs_read: int = 0
    logs_gone: int = 0
    logs_failed: int = 0
    files_read: int = 0
    alerts: set[int] = field(default_factory=set)
    paused_until: datetime | None = None

    def summary(self) -> str:
        return (f"{self.logs_read} logs read, {self.logs_gone} gone, {self.logs_failed} "
                f"not read yet, {self.files_read} commits' files read")


def retry_at(now: datetime, attempts: int) -> datetime:
    """1, 2, 4, 8... minutes after the ``attempts``-th failed read."""
    return now + FIRST_RETRY * (2 ** min(attempts, 8))


class EvidenceReader:
    """Reads what alerts need to explain themselves, with ``GITHUB_TOKEN``."""

    def __init__(self, bot: Bot, timeout: float = 30.0) -> None:
        self.bot = bot
        self.timeout = timeout

    def run_once(self) -> EvidenceReport:
        report = EvidenceReport()
        settings = self.bot.settings
        try:
            with rest.client(settings.github_api_url, settings.github_token,
                             timeout=self.timeout) as api, \
                    rest.blob_client(timeout=self.timeout) as blob:
                self._logs(api, blob, report)
                self._files(api, report)
        except ApiRateLimited as limited:
            report.paused_until = limited.until
            with self.bot.store.transaction() as db:
                store.postpone_logs(db, limited.until)
                store.postpone_files(db, limited.until)
            log.warning("evidence reader paused until %s: %s", limited.until.isoformat(),
                        limited.reason)
            self.bot.health.error(NAME, f"paused until {limited.until.isoformat()}: "
                                        f"{limited.reason}")
        else:
            self.bot.health.ok(NAME, note=report.summary())
        finally:
            if report.alerts:
                self.bot.alerts_changed(set(report.alerts))
        return report

    # --- logs ---------------------------------------------------------------------------------

    def _logs(self, api: httpx.Client, blob: httpx.Client, report: EvidenceReport) -> None:
        due = store.logs_due(self.bot.store.db, self.bot.clock(), LOGS_PER_TICK)
        for job in due:
            now = self.bot.clock()
            try:
                tail = rest.job_log_tail(api, blob, job.repo, job.job_id, now,
                                         max_bytes=self.bot.settings.github_log_tail_bytes)
            except Gone as exc:
                with self.bot.store.transaction() as db:
                    store.log_not_read(db, job.repo, job.job_id, str(exc), now, None)
                report.logs_gone += 1
                continue
            except ApiUnavailable as exc:
                with self.bot.store.transaction() as db:
                    store.log_not_read(db, job.repo, job.job_id, str(exc), now,
                                       retry_at(now, job.attempts))
                report.logs_failed += 1
                log.info("log of job %s not read yet: %s", job.job_id, exc)
                continue
            self._store_log(job, tail, report)

    def _store_log(self, job: store.LogDue, tail: rest.LogTail, report: EvidenceReport) -> None:
        lines = tail.text.splitlines()
        found = extract(lines)
        workflow, _, _ = job.job_key.partition(" / ")
        rules = self.bot.ingestor.failure_rules(job.repo, workflow, job.job_name)
        classification = classify(lines, found, job.conclusion, rules)
        result = JobResult(repo=job.repo, sha=job.sha, workflow=workflow,
                           job_name=job.job_name, job_id=job.job_id, status="completed",
                           conclusion=job.conclusion)
        now = self.bot.clock()
        with self.bot.store.transaction() as db:
            changed = store.record(db, result, job.job_key, found, classification,
                                   signature(found, classification), store.LOG, now,
                                   bytes_read=tail.bytes_read)
            shown = (store.open_alerts_showing(db, job.repo, job.job_key, job.sha) if changed
                     else [])
            for alert_id in shown:
                alert_store.bump_version(db, alert_id)
        report.logs_read += 1
        report.alerts.update(shown)
        if changed:
            # an infra failure stops counting towards its streak (and one that turned out
            # not to be infra counts again): recompute the cell and judge the job again; a
            # member left with only infrastructure failures leaves its alert (the engine's
            # withdrawal, ``store.alerts.withdraw``)
            report.alerts.update(self.bot.ingestor.evidence_changed(job.repo, job.sha,
                                                                    job.job_key).alerts)

    # --- files the suspects touched -------------------------------------------------------------

    def _files(self, api: httpx.Client, report: EvidenceReport) -> None:
        now = self.bot.clock()
        with self.bot.store.transaction() as db:
            missing = store.suspects_without_files(db, SUSPECTS_LOOKED_UP)
            by_repo: dict[str, list[str]] = {}
            for repo, sha in missing:
                by_repo.setdefault(repo, []).append(sha)
            for repo, shas in by_repo.items():
                store.want_files(db, repo, shas, now)
        for repo, sha, attempts in store.files_due(self.bot.store.db, now, FILES_PER_TICK):
            now = self.bot.clock()
            try:
                files = rest.commit_files(api, repo, sha, now)
            except Gone as exc:
                with self.bot.store.transaction() as db:
                    store.files_not_read(db, repo, sha, str(exc), now, None)
                continue
            except ApiUnavailable as exc:
                with self.bot.store.transaction() as db:
                    store.files_not_read(db, repo, sha, str(exc), now, retry_at(now, attempts))
                continue
            with self.bot.store.transaction() as db:
                store.record_files(db, repo, sha, files.files, None, "api", now,
                                   truncated=files.truncated)
                shown = store.open_alerts_with_suspect(db, repo, sha)
                for alert_id in shown:
                    alert_store.bump_version(db, alert_id)
            report.files_read += 1
            report.alerts.update(shown)
