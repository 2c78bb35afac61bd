"""The one path every alert message and thread reply takes to Slack.

A single thread (per database, held by a lease) reads what is due from the outbox
tables, renders it fresh, sends it paced per channel, and records the result. Slack
failures are typed (see ``client``): rate limits pause the channel, transient errors
back off exponentially, permanent ones wait for a human and show in ``/healthz``;
nothing is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.alert_ids import short_id
from bot.domain.paging import extension_gap, join_is_quiet, page_on_open
from bot.domain.route import Route
from bot.health import Health
from bot.slack import people
from bot.slack.client import (
    InDoubt,
    MessageGone,
    Permanent,
    RateLimited,
    Rejected,
    SlackApi,
    SlackError,
)
from bot.slack.listing import channel_of, permalink
from bot.slack.present import build_alert_view, event_view
from bot.slack.render import render_event, render_parent
from bot.store import alerts as alert_store
from bot.store import leases, outbox
from bot.store import triage as triage_store
from bot.store.db import Store

log = logging.getLogger(__name__)

PARENT_EVENT = "inductor_alert"
REPLY_EVENT = "inductor_alert_event"
LEASE = "slack-sender"
LEASE_TTL = timedelta(seconds=30)
HISTORY_PAGES = 50  # pages of 200 read when looking for a message: 10,000 messages back
# methods that post into a channel: paced per channel; reads are not
POSTING = frozenset({"chat.postMessage", "chat.update", "chat.delete"})


class LeaseLost(Exception):
    """Another process holds the sender lease now: this one must not call Slack again."""


# timeline kinds that never get a thread reply: the parent message shows them (except
# "opened" when the route pages its on-call: the page is a reply mentioning them)
SILENT_KINDS = frozenset({"opened", "narrowed", "grafana_attached"})
# kinds that must reach the thread even if the parent was posted after them: they
# mention people (a parent edit notifies nobody), or link the alert this one follows
ALWAYS_REPLY_KINDS = frozenset({"reminder", "escalated", "follows"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _meta(message: dict[str, Any], event_type: str, key: str) -> object:
    """``event_payload[key]`` of a message's metadata of ``event_type``, else None."""
    meta = message.get("metadata") or {}
    if meta.get("event_type") != event_type:
        return None
    return (meta.get("event_payload") or {}).get(key)


class Sender:
    """Delivers the outbox. ``run_once`` does one pass; ``start`` runs passes in a thread."""

    def __init__(
        self,
        store: Store,
        api: SlackApi,
        routes: Mapping[str, Route],
        health: Health,
        *,
        default_channel: str | None = None,
        clock: Callable[[], datetime] = _utc_now,  # wall time: Slack ts and backoff use it
        pace_s: float = 1.0,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 300.0,
        permanent_retry_s: float = 300.0,
        idle_poll_s: float = 2.0,
        in_doubt_s: float = 10.0,
        lease_ttl_s: float = LEASE_TTL.total_seconds(),
        console: bool = False,
    ) -> None:
        self.store = store
        self.api = api
        self.routes = routes
        self.health = health
        self.default_channel = default_channel
        self.clock = clock
        self.pace_s = pace_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.permanent_retry_s = permanent_retry_s
        self.idle_poll_s = idle_poll_s
        self.in_doubt_s = in_doubt_s
        self.lease_ttl = timedelta(seconds=lease_ttl_s)
        self.console = console  # the api prints instead of sending (no SLACK_BOT_TOKEN)
        self.holder = leases.holder_id()
        self._next_free: dict[str, float] = {}
        self._names: dict[str, str | None] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._passes = threading.Condition()
        self._passes_started = 0
        self._last_idle_pass = 0  # the number of the last pass that had nothing to send
        # progress, for /healthz: when the thread last moved, and until when it is
        # waiting on purpose (pacing, Retry-After) rather than stuck
        self._moved_at = time.monotonic()
        self._waiting_until = 0.0

    # --- thread ---------------------------------------------------------------------------

    def start(self) -> None:
        with self.store.transaction() as db:
            retried = outbox.retry_permanent_now(db, self.clock())
            fresh = 0 if self.console else outbox.forget_console_parents(db)
        if fresh:
            log.info("%d open alert(s) were only shown in console mode: posting them to Slack",
                     fresh)
        if retried:
            log.info("retrying %d Slack deliveries that failed for good before this start",
                     retried)
        self._thread = threading.Thread(target=self._loop, name="slack-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            with self.store.transaction() as db:
                leases.release(db, LEASE, self.holder)
        except Exception:  # stopping must not fail because the database went away
            log.debug("could not release sender lease", exc_info=True)

    def wake(self, _alert_ids: object = None) -> None:
        self._wake.set()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until a pass begun after this call finds nothing left to send; True if so.

        For a caller that must see everything an earlier change caused before it goes on:
        the demo prints each step's messages under that step. Replies held back on
        purpose (a coalesced "still failing") do not count as left to send.
        """
        with self._passes:
            target = self._passes_started + 1
        self.wake()
        with self._passes:
            return self._passes.wait_for(lambda: self._last_idle_pass >= target, timeout)

    def stuck_for(self) -> float | None:
        """Seconds since the sender last made progress (0 while it waits on purpose).

        None when it is not running here (not started, or stopped); ``inf`` when its
        thread died.
        """
        if self._thread is None or self._stop.is_set():
            return None
        if not self._thread.is_alive():
            return float("inf")
        now = time.monotonic()
        if now < self._waiting_until:
            return 0.0
        return now - max(self._moved_at, self._waiting_until)

    def _moved(self) -> None:
        self._moved_at = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._passes:
                self._passes_started += 1
                number = self._passes_started
            self._moved()
            try:
                worked = self.run_once()
            except Exception:  # the sender must outlive any one bad pass
                log.exception("slack sender pass failed")
                worked = False
            if not worked:
                with self._passes:
                    self._last_idle_pass = number
                    self._passes.notify_all()
                self._waiting_until = time.monotonic() + self.idle_poll_s
                self._wake.wait(self.idle_poll_s)
                self._wake.clear()

    # --- one pass -------------------------------------------------------------------------

    def run_once(self) -> bool:
        """Deliver what is due; returns True if any Slack call was made.

        The lease is renewed before every Slack call (``_call``), not only here: a pass
        can outlive the lease (pacing, ``Retry-After``), and a process that lost it
        stops at its next call instead of posting beside the new holder.
        """
        try:
            self._hold_lease()
        except LeaseLost:
            return False
        try:
            return self._pass()
        except LeaseLost:
            log.warning("slack sender lease taken by another process; pass abandoned")
            return False

    def _hold_lease(self) -> None:
        with self.store.transaction() as db:
            if not leases.acquire(db, LEASE, self.holder, self.lease_ttl, self.clock()):
                raise LeaseLost(LEASE)

    def _pass(self) -> bool:
        worked = False
        handled: set[int] = set()
        while not self._stop.is_set():
            # asked again after every delivery: a parent for an alert that opened while
            # this pass edited others goes out next, not after every paced edit before it
            due = next((d for d in outbox.parents_due(self.store.db, self.clock())
                        if d.alert_id not in handled), None)
            if due is None:
                break
            handled.add(due.alert_id)
            worked |= self._deliver_parent(due)
        if self._stop.is_set():
            return worked
        blocked: set[int] = set()
        for due in outbox.replies_due(self.store.db, self.clock(), console=self.console):
            if self._stop.is_set():
                return worked
            if due.alert_id in blocked:
                continue
            sent = self._deliver_reply(due)
            if sent is None:
                blocked.add(due.alert_id)  # keep the thread in order behind a failed reply
            else:
                worked |= sent
            if sent and outbox.first_post_due(self.store.db, self.clock()):
                return True  # a new alert opened meanwhile: the next pass posts it first
        worked |= self._sweep()
        self._report_health()
        return worked

    def _channel(self, alert_id: int) -> str | None:
        head = alert_store.head(self.store.db, alert_id)
        return channel_of(self.routes.get(head.route) if head else None, self.default_channel)

    def _deliver_parent(self, due: outbox.ParentDue) -> bool:
        if due.console and not self.console:
            # printed in console mode only: Slack never saw it, so post it afresh
            with self.store.transaction() as db:
                outbox.forget_console_parent(db, due.alert_id)
            due = replace(due, channel=None, ts=None, rendered_version=0,
                          post_started_at=None, console=False)
        channel = due.channel or self._channel(due.alert_id)
        target = f"parent:{due.alert_id}"
        if channel is None:
            with self.store.transaction() as db:
                outbox.record_failure(
                    db, target, None, "no channel configured for this alert's route "
                    "(set SLACK_CHANNEL or the route's channel)",
                    timedelta(seconds=self.permanent_retry_s), True, self.clock())
            return False
        with self.store.transaction() as db:
            outbox.ensure_parent(db, due.alert_id, channel)
        try:
            if due.ts is None:
                if due.post_started_at is not None:
                    if self.clock() - due.post_started_at < timedelta(seconds=self.in_doubt_s):
                        return False  # maybe still in flight (another process, a restart)
                    found = self._find_parent(channel, due.alert_id, due.post_started_at)
                    if found is not None:
                        log.info("alert %s: parent already in Slack (ts %s); not reposting",
                                 due.alert_id, found)
                        with self.store.transaction() as db:
                            # version 0: the next pass edits it to the current state
                            outbox.record_parent(db, due.alert_id, found, 0, 0, self.clock(),
                                                 console=self.console)
                        return True
                return self._post_parent(due, channel)
            return self._update_parent(due, channel)
        except SlackError as exc:
            self._failed(target, channel, exc)
            if isinstance(exc, MessageGone) and due.ts is not None:
                with self.store.transaction() as db:
                    outbox.forget_parent(db, due.alert_id)
            return True

    def _render(self, alert_id: int) -> tuple[int, str, list[dict[str, Any]], int] | None:
        db = self.store.db
        head = alert_store.head(db, alert_id)
        if head is None:
            return None
        version = head.version  # read before rendering: never record more than was drawn
        covered = outbox.max_event_id(db, alert_id)
        view = build_alert_view(db, alert_id, self.routes)
        if view is None:
            return None
        # the channel message names the on-call and owners without pinging them (its
        # first post would notify every mention); the page is a reply of its own
        view = replace(view, names={i: self._person_name(i) for i in view.oncall + view.owners})
        text, blocks = render_parent(view)
        return version, text, blocks, covered

    def _post_parent(self, due: outbox.ParentDue, channel: str) -> bool:
        rendered = self._render(due.alert_id)
        if rendered is None:
            return False
        version, text, blocks, covered = rendered
        now = self.clock()
        with self.store.transaction() as db:
            if not outbox.mark_parent_started(db, due.alert_id, covered, now,
                                              seen_started_at=due.post_started_at):
                return False  # another process claimed it since we read it
            if due.post_started_at is not None:
                # the earlier post was not found, but may still land: watch for a twin
                self._watch(db, f"parent:{due.alert_id}", due.alert_id, None, channel,
                            due.post_started_at, now)
        metadata = {"event_type": PARENT_EVENT, "event_payload": {"alert_id": due.alert_id}}
        response = self._call_with_fallback(
            "chat.postMessage", channel, text, blocks,
            metadata=metadata, unfurl_links=False, unfurl_media=False)
        with self.store.transaction() as db:
            outbox.record_parent(db, due.alert_id, str(response["ts"]), version, covered,
                                 self.clock(), console=self.console)
            outbox.clear_failure(db, f"parent:{due.alert_id}")
        return True

    def _update_parent(self, due: outbox.ParentDue, channel: str) -> bool:
        rendered = self._render(due.alert_id)
        if rendered is None:
            return False
        version, text, blocks, _ = rendered
        self._call_with_fallback("chat.update", channel, text, blocks, ts=due.ts)
        with self.store.transaction() as db:
            outbox.record_update(db, due.alert_id, version, self.clock())
            outbox.clear_failure(db, f"parent:{due.alert_id}")
        return True

    def _deliver_reply(self, due: outbox.ReplyDue) -> bool | None:
        """Returns True when sent, False when settled or held without a call, None on failure."""
        now = self.clock()
        target = f"reply:{due.event_id}"
        try:
            if due.post_started_at is not None:
                # a post started before a crash or a timeout may be in the thread: if it
                # is, it was sent, whatever the rules below would now decide for the event
                if now - due.post_started_at < timedelta(seconds=self.in_doubt_s):
                    return None  # maybe still in flight: keep the thread's order behind it
                found = self._find_reply(due.channel, due.parent_ts, due.event_id)
                if found is not None:
                    with self.store.transaction() as tx:
                        outbox.settle_reply(tx, due.event_id, due.alert_id, "sent", now, found)
                    return False
            page = due.kind == "opened" and bool(self._oncall_page(due.alert_id))
            covered = (due.event_id <= due.covered_event_id
                       and due.kind not in ALWAYS_REPLY_KINDS and not page)
            if covered or (due.kind in SILENT_KINDS and not page):
                with self.store.transaction() as tx:
                    outbox.settle_reply(tx, due.event_id, due.alert_id, "skipped", now)
                return False
            db = self.store.db
            if due.kind == "extended":
                if outbox.later_event_of_kind(db, due.alert_id, due.event_id,
                                              ("extended", "resolved")):
                    with self.store.transaction() as tx:
                        outbox.settle_reply(tx, due.event_id, due.alert_id, "superseded", now)
                    return False
                last, sent = outbox.sent_of_kind(db, due.alert_id, "extended")
                gap = extension_gap(self._extend_interval(due.alert_id), sent)
                if last is not None and now - last < gap:
                    return False  # held: coalesced into a later reply, or sent when due
            text = self._reply_text(due)
            if text is None:
                with self.store.transaction() as tx:
                    outbox.settle_reply(tx, due.event_id, due.alert_id, "skipped", now)
                return False
            with self.store.transaction() as tx:
                if not outbox.start_reply(tx, due.event_id, due.alert_id, now,
                                          seen_started_at=due.post_started_at):
                    return None  # another process claimed it since we read it
                if due.post_started_at is not None:
                    self._watch(tx, target, due.alert_id, due.event_id, due.channel,
                                due.post_started_at, now)
            metadata = {"event_type": REPLY_EVENT,
                        "event_payload": {"alert_id": due.alert_id, "event_id": due.event_id}}
            response = self._call_with_fallback(
                "chat.postMessage", due.channel, text, None, thread_ts=due.parent_ts,
                metadata=metadata, unfurl_links=False, unfurl_media=False)
            with self.store.transaction() as tx:
                outbox.settle_reply(tx, due.event_id, due.alert_id, "sent", self.clock(),
                                    str(response["ts"]))
            return True
        except MessageGone as exc:
            log.warning("alert %s: thread gone (%s); reply to event %s dropped",
                        due.alert_id, exc.code, due.event_id)
            with self.store.transaction() as tx:
                outbox.settle_reply(tx, due.event_id, due.alert_id, "skipped", now)
            return False
        except SlackError as exc:
            self._failed(target, due.channel, exc)
            return None

    def _extend_interval(self, alert_id: int) -> timedelta:
        head = alert_store.head(self.store.db, alert_id)
        route = self.routes.get(head.route) if head else None
        return route.extend_interval if route else timedelta(minutes=30)

    def _reply_text(self, due: outbox.ReplyDue) -> str | None:
        db = self.store.db
        view = build_alert_view(db, due.alert_id, self.routes)
        event = next((e for e in alert_store.events(db, due.alert_id) if e.id == due.event_id),
                     None)
        if view is None or event is None:
            return None
        shown = replace(event_view(event), actor_name=self._user_name(event.actor))
        if event.kind == "job_joined" and join_is_quiet(view.opened_at, event.at):
            return None  # part of the first look at the alert: the parent shows it
        if event.kind == "follows" and isinstance(event.data.get("previous"), int):
            previous = int(event.data["previous"])
            shown = replace(shown, data={**shown.data, "previous_short": short_id(previous),
                                         "url": permalink(db, self.api, previous)})
        if event.kind == "opened":
            shown = replace(shown, data={**shown.data,
                                         "mentions": list(self._oncall_page(due.alert_id))})
        if event.kind == "extended":
            # coalesced: one reply stands for every extension since the last, so it
            # reports the streaks as they are now, not as the first event saw them
            jobs = [{"key": j.key, "streak": j.streak} for j in view.jobs if not j.recovered]
            shown = replace(shown, data={**shown.data, "jobs": jobs})
        return render_event(shown, view) or None

    def _oncall_page(self, alert_id: int) -> tuple[str, ...]:
        """Whom the alert's opening pages, by its route's notify policy for its priority."""
        state = triage_store.load(self.store.db, alert_id)
        if state is None:
            return ()
        return page_on_open(self.routes.get(state.route) or Route(name=state.route),
                            state.priority)

    def _person_name(self, slack_id: str) -> str:
        """A user's display name or a group's handle; the id itself when Slack cannot say."""
        if slack_id not in self._names:
            self._names[slack_id] = (people.group_handle(self.api, slack_id)
                                     if slack_id.startswith("S")
                                     else people.user_name(self.api, slack_id)[1])
        return self._names[slack_id] or slack_id

    def _user_name(self, user_id: str | None) -> str | None:
        """A display name for thread replies, which name people without pinging them."""
        if not user_id:
            return None
        if user_id not in self._names:
            self._names[user_id] = people.user_name(self.api, user_id)[1]
        return self._names[user_id]

    # --- Slack calls ------------------------------------------------------------------------

    def _call_with_fallback(self, method: str, channel: str, text: str,
                            blocks: list[dict[str, Any]] | None, **params: Any) -> dict[str, Any]:
        try:
            return self._call(method, channel=channel, text=text,
                              **({"blocks": blocks} if blocks else {}), **params)
        except Rejected as exc:
            if not blocks:
                raise
            log.error("%s refused our blocks (%s); sending plain text instead", method, exc.code)
            return self._call(method, channel=channel, text=text, **params)

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        channel = params.get("channel") or ""
        paced = method in POSTING
        wait = self._next_free.get(channel, 0.0) - time.monotonic() if paced else 0.0
        if wait > 0:
            self._waiting_until = time.monotonic() + wait
            self._stop.wait(wait)
        self._hold_lease()  # after any wait: the lease may have lapsed meanwhile
        self._moved()
        try:
            response = self.api.call(method, **params)
        except RateLimited as exc:
            self._next_free[channel] = time.monotonic() + exc.retry_after
            raise
        finally:
            self._moved()
            if paced:
                self._next_free[channel] = max(self._next_free.get(channel, 0.0),
                                               time.monotonic() + self.pace_s)
        self.health.ok("slack")
        return response

    def _pages(self, method: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every message of a paginated read, following ``next_cursor`` to the end."""
        cursor = ""
        for _ in range(HISTORY_PAGES):
            response = self._call(method, include_all_metadata=True, limit=200, **params,
                                  **({"cursor": cursor} if cursor else {}))
            yield from response.get("messages", [])
            cursor = str((response.get("response_metadata") or {}).get("next_cursor") or "")
            if not response.get("has_more") or not cursor:
                return
        log.warning("%s in %s: more than %d pages; stopped reading", method,
                    params.get("channel"), HISTORY_PAGES)

    def _parents_in_channel(self, channel: str, alert_id: int, since: datetime) -> list[str]:
        """The ts of every message in the channel carrying this alert's parent metadata."""
        oldest = (since - timedelta(minutes=5)).timestamp()
        return [str(m["ts"]) for m in self._pages("conversations.history", channel=channel,
                                                  oldest=f"{oldest:.6f}")
                if _meta(m, PARENT_EVENT, "alert_id") == alert_id]

    def _replies_in_thread(self, channel: str, parent_ts: str, event_id: int) -> list[str]:
        return [str(m["ts"]) for m in self._pages("conversations.replies", channel=channel,
                                                  ts=parent_ts)
                if _meta(m, REPLY_EVENT, "event_id") == event_id]

    def _find_parent(self, channel: str, alert_id: int, since: datetime) -> str | None:
        """Look in the channel's history for a parent we posted but never recorded."""
        found = self._parents_in_channel(channel, alert_id, since)
        return min(found, key=float) if found else None

    def _find_reply(self, channel: str, parent_ts: str, event_id: int) -> str | None:
        found = self._replies_in_thread(channel, parent_ts, event_id)
        return min(found, key=float) if found else None

    # --- twins of posts that were in doubt ----------------------------------------------------

    def _watch(self, db: Any, target: str, alert_id: int, event_id: int | None, channel: str,
               since: datetime, now: datetime) -> None:
        every = self._sweep_every()
        window = max(timedelta(minutes=10), every * 30)
        outbox.watch_for_twin(db, target, alert_id, event_id, channel, since, now + every,
                              now + window)

    def _sweep_every(self) -> timedelta:
        return timedelta(seconds=min(max(self.in_doubt_s, 1.0), 60.0))

    def _sweep(self) -> bool:
        """Delete late twins of posts that were in doubt, keeping the recorded message.

        A post that timed out can land after the bot looked for it and posted again;
        the copy it recorded stays (edits and replies point at it), any other message
        with the same metadata goes, for as long as the sweep's window lasts.
        """
        now = self.clock()
        worked = False
        for sweep in outbox.sweeps_due(self.store.db, now):
            if self._stop.is_set():
                break
            db = self.store.db
            parent = outbox.posted_parent(db, sweep.alert_id)
            keep = (parent[1] if parent else None) if sweep.event_id is None else \
                outbox.reply_ts(db, sweep.event_id)
            try:
                if keep is not None and parent is not None:
                    found = (self._parents_in_channel(sweep.channel, sweep.alert_id, sweep.since)
                             if sweep.event_id is None else
                             self._replies_in_thread(sweep.channel, parent[1], sweep.event_id))
                    for ts in found:
                        if ts != keep:
                            log.warning("%s: a late copy (ts %s) landed beside the recorded "
                                        "one (ts %s); deleting it", sweep.target, ts, keep)
                            self._call("chat.delete", channel=sweep.channel, ts=ts)
                            worked = True
            except MessageGone:
                pass  # deleted meanwhile: nothing left to do for that copy
            except SlackError as exc:
                log.warning("%s: looking for a late copy failed: %s", sweep.target, exc)
            ends = now >= sweep.until
            with self.store.transaction() as tx:
                outbox.next_sweep(tx, sweep.target, None if ends else now + self._sweep_every())
        return worked

    def _failed(self, target: str, channel: str | None, exc: SlackError) -> None:
        now = self.clock()
        db_attempts = outbox.failure_attempts(self.store.db, target)
        if isinstance(exc, RateLimited):
            retry_in = timedelta(seconds=exc.retry_after)
        elif isinstance(exc, Permanent):
            retry_in = timedelta(seconds=self.permanent_retry_s)
        else:
            retry_in = timedelta(seconds=min(self.backoff_max_s,
                                             self.backoff_base_s * 2 ** db_attempts))
        if isinstance(exc, InDoubt):
            # Slack may still be storing the post: looking for it too soon finds nothing
            # and the retry doubles it, so wait at least as long as the call itself could
            retry_in = max(retry_in, timedelta(seconds=self.in_doubt_s))
        permanent = isinstance(exc, Permanent)
        with self.store.transaction() as db:
            attempts = outbox.record_failure(db, target, channel, exc.code, retry_in, permanent,
                                             now)
        level = logging.ERROR if permanent else logging.WARNING
        log.log(level, "slack delivery of %s to %s failed (attempt %d): %s; retry in %ss",
                target, channel, attempts, exc, int(retry_in.total_seconds()))
        self.health.error("slack", f"{target}: {exc}")

    def _report_health(self) -> None:
        """Permanent failures become a /healthz problem; the backlog counts are /healthz's own."""
        permanent = outbox.permanent_failures(self.store.db)
        self.health.problem(
            "slack", None if not permanent else
            "; ".join(f"{target} in {channel}: {error}" for target, channel, error in permanent))
