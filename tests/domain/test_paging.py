"""Paging rules: the notify policy per route and priority, quiet joins, "still failing" back-off."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.paging import (
    POLICIES,
    escalation_mentions,
    extension_gap,
    join_is_quiet,
    notify_policy,
    page_on_open,
    reminds,
)
from bot.domain.route import Route

T0 = datetime(2025, 12, 9, 12, tzinfo=UTC)
ROUTE = Route(oncall=("S0ONCALL",), owners=("U0OWNER",), escalate_to=("U0LEAD",))


def test_default_pages_the_oncall_when_an_alert_opens() -> None:
    assert notify_policy(ROUTE, "P2") == "open"
    assert page_on_open(ROUTE, "P2") == ("S0ONCALL",)
    assert page_on_open(Route(), "P2") == ()  # nobody on call: nobody paged


@pytest.mark.parametrize("priority", ["P0", "P1", "P2", "P3"])
@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_and_priority(priority: str, policy: str) -> None:
    """Per-priority entries win over ``default``; each policy decides the three pages."""
    other = next(p for p in POLICIES if p != policy)
    route = Route(oncall=("S0ONCALL",), escalate_to=("U0LEAD",),
                  notify={"default": other, priority: policy})
    assert notify_policy(route, priority) == policy
    assert page_on_open(route, priority) == (("S0ONCALL",) if policy == "open" else ())
    assert reminds(route, priority) == (policy == "open")
    assert escalation_mentions(route, priority) == (() if policy == "never" else ("U0LEAD",))
    untouched = next(p for p in ("P0", "P1", "P2", "P3") if p != priority)
    assert notify_policy(route, untouched) == other


def test_escalation_falls_back_to_the_oncall() -> None:
    assert escalation_mentions(Route(oncall=("S1",)), "P2") == ("S1",)


def test_joins_in_the_first_minutes_are_quiet() -> None:
    assert join_is_quiet(T0, T0 + timedelta(seconds=1))
    assert join_is_quiet(T0, T0 + timedelta(minutes=10))
    assert not join_is_quiet(T0, T0 + timedelta(minutes=11))


def test_still_failing_replies_back_off() -> None:
    interval = timedelta(minutes=30)
    gaps = [extension_gap(interval, n) for n in range(8)]
    assert gaps[:6] == [timedelta(0), timedelta(minutes=30), timedelta(hours=1),
                        timedelta(hours=2), timedelta(hours=4), timedelta(hours=8)]
    assert gaps[7] == timedelta(hours=24)  # capped


def replies_over(hours: float, every: timedelta, interval: timedelta) -> int:
    """Oracle: walk the extensions of an incident and send when the gap allows."""
    sent, last = 0, None
    at = T0
    while at <= T0 + timedelta(hours=hours):
        if last is None or at - last >= interval * 2 ** (sent - 1):
            sent, last = sent + 1, at
        at += every
    return sent


@given(st.integers(min_value=1, max_value=72), st.integers(min_value=5, max_value=120))
def test_back_off_matches_a_doubling_oracle(hours: int, minutes_between: int) -> None:
    interval, every = timedelta(minutes=30), timedelta(minutes=minutes_between)
    sent, last = 0, None
    at = T0
    while at <= T0 + timedelta(hours=hours):
        if last is None or at - last >= extension_gap(interval, sent):
            sent, last = sent + 1, at
        at += every
    if hours <= 24:  # below the cap the gaps are the oracle's doublings exactly
        assert sent == replies_over(hours, every, interval)
    assert sent <= 4 + hours // 24 + 6


def test_a_sixteen_hour_incident_has_a_handful_of_replies() -> None:
    assert replies_over(16, timedelta(minutes=20), timedelta(minutes=30)) <= 6
