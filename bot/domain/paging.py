"""Who the bot pages and when: a route's notify policy per priority, and a quiet thread's pace.

Pure rules over a route and times. A page is a mention in a new message (a thread
reply): edits notify nobody, so whoever must act is mentioned in a message of its own.
See ``TRIAGE.md`` beside this file for the rules in prose.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, cast

from bot.domain.route import Route

NotifyPolicy = Literal["open", "escalation", "never"]
POLICIES: tuple[NotifyPolicy, ...] = ("open", "escalation", "never")
DEFAULT_POLICY: NotifyPolicy = "open"

# jobs that join an alert this soon after it opened are part of the same first look:
# they update the parent only, never a "started failing" reply of their own
JOIN_QUIET = timedelta(minutes=10)
# "still failing" replies back off: the gap doubles after each one, up to a day
EXTENSION_GAP_CAP = timedelta(hours=24)


def notify_policy(route: Route, priority: str) -> NotifyPolicy:
    """The route's policy for alerts of ``priority``: its own entry, else ``default``.

    ``open``: the on-call group is mentioned when the alert opens, reminded while nobody
    acknowledges, and ``escalate_to`` is mentioned on escalation. ``escalation``: no
    page at open and no reminders; the first mention is the escalation. ``never``: the
    bot mentions nobody by itself (the escalation still raises the shown priority).
    """
    chosen = route.notify.get(priority) or route.notify.get("default") or DEFAULT_POLICY
    return cast(NotifyPolicy, chosen if chosen in POLICIES else DEFAULT_POLICY)


def page_on_open(route: Route, priority: str) -> tuple[str, ...]:
    """Whom to mention when an alert of ``priority`` opens: the on-call, if the policy says so."""
    return route.oncall if notify_policy(route, priority) == "open" else ()


def reminds(route: Route, priority: str) -> bool:
    """Whether unacknowledged alerts of ``priority`` get reminders (which mention people)."""
    return notify_policy(route, priority) == "open"


def escalation_mentions(route: Route, priority: str) -> tuple[str, ...]:
    """Whom an escalation mentions: ``escalate_to``, else the on-call; nobody under ``never``."""
    if notify_policy(route, priority) == "never":
        return ()
    return route.escalate_to or route.oncall


def join_is_quiet(opened_at: datetime, joined_at: datetime,
                  window: timedelta = JOIN_QUIET) -> bool:
    """A job joining within ``window`` of the opening shows in the parent only."""
    return joined_at - opened_at <= window


def extension_gap(interval: timedelta, replies_sent: int,
                  cap: timedelta = EXTENSION_GAP_CAP) -> timedelta:
    """The least time between the last "still failing" reply and the next one.

    ``interval``, then twice that after each further reply (30 m, 1 h, 2 h, 4 h ...),
    at most ``cap``: a long incident's thread stays readable. No reply sent yet: no wait.
    """
    if replies_sent <= 0:
        return timedelta(0)
    gap = interval
    for _ in range(replies_sent - 1):
        gap *= 2
        if gap >= cap:
            return cap
    return min(gap, cap)
