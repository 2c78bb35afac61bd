"""Triage rules without Slack or SQLite: transitions, permissions, snooze arguments, nudges."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain import triage as rules
from bot.domain.route import Route
from bot.domain.triage import (
    Escalation,
    Refusal,
    Reminder,
    SnoozeExpiry,
    SnoozeSpec,
    Transition,
    TriageState,
    due_nudges,
    nudge_transition,
    parse_snooze,
)

T0 = datetime(2025, 12, 9, 12, 0, tzinfo=UTC)
ROUTE = Route(oncall=("S0ONCALL",), owners=("U0OWNER",), escalate_to=("U0LEAD",),
              remind_after=timedelta(minutes=30), remind_every=timedelta(minutes=30),
              remind_limit=3, escalate_after=timedelta(hours=2))


def fresh(**changes: object) -> TriageState:
    return replace(TriageState(id=1, route="inductor", priority="P2", resolved=False,
                               opened_at=T0), **changes)  # type: ignore[arg-type]


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


# ------------------------------------------------------------------- transitions


def test_acknowledge_then_again_names_the_first_acknowledger() -> None:
    done = rules.acknowledge(fresh(), "U1", minutes(5))
    assert isinstance(done, Transition) and done.event == "acknowledged" and done.actor == "U1"
    assert done.after.acked_by == "U1" and done.after.acked_at == minutes(5)
    again = rules.acknowledge(done.after, "U2", minutes(6))
    assert again == Refusal("already_acked", by="U1", at=minutes(5))


def test_unacknowledge_restarts_the_reminder_clock() -> None:
    acked = fresh(acked_by="U1", acked_at=minutes(1), reminders_sent=2,
                  last_reminder_at=minutes(60))
    done = rules.unacknowledge(acked, "U2", minutes(90))
    assert isinstance(done, Transition) and done.event == "unacknowledged"
    assert done.after.acked_by is None and done.after.reminders_sent == 0
    assert done.after.reminders_from == minutes(90) and done.after.last_reminder_at is None
    assert rules.unacknowledge(fresh(), "U2", minutes(1)) == Refusal("not_acked")


def test_assign_records_who_and_refuses_the_same_assignee() -> None:
    done = rules.assign(fresh(), "U1", "U2", minutes(3), "bob")
    assert isinstance(done, Transition)
    assert done.data == {"assignee": "U2", "assignee_name": "bob"}
    assert (done.after.assignee, done.after.assigned_by) == ("U2", "U1")
    refused = rules.assign(done.after, "U3", "U2", minutes(4))
    assert isinstance(refused, Refusal) and refused.code == "already_assigned"
    assert refused.detail == "U2" and refused.by == "U1"
    reassigned = rules.assign(done.after, "U3", "U3", minutes(4))
    assert isinstance(reassigned, Transition) and reassigned.after.assignee == "U3"


def test_snooze_kinds_and_their_event_data() -> None:
    by_time = rules.snooze(fresh(), "U1", SnoozeSpec("duration", timedelta(hours=2)), T0)
    assert isinstance(by_time, Transition)
    assert by_time.after.snoozed_until == minutes(120) and by_time.after.snooze_kind == "duration"
    assert by_time.data == {"until": minutes(120).isoformat()}
    green = rules.snooze(fresh(), "U1", SnoozeSpec("green"), T0)
    assert isinstance(green, Transition)
    assert green.after.snoozed_until is None and green.data == {"until": "green"}
    sha = rules.snooze(fresh(), "U1", SnoozeSpec("sha", sha="abc1234"), T0)
    assert isinstance(sha, Transition)
    assert sha.after.snooze_sha == "abc1234" and sha.data == {"until": "abc1234"}
    assert sha.after.snoozed_until == T0 + rules.SHA_SNOOZE_CAP
    # a new snooze replaces the old one (no stale sha left behind)
    replaced = rules.snooze(sha.after, "U2", SnoozeSpec("green"), T0)
    assert isinstance(replaced, Transition) and replaced.after.snooze_sha is None


def test_unsnooze_needs_a_snooze() -> None:
    assert rules.unsnooze(fresh(), "U1", T0) == Refusal("not_snoozed")
    done = rules.unsnooze(fresh(snooze_kind="green", snoozed_by="U1"), "U2", minutes(9))
    assert isinstance(done, Transition) and done.event == "unsnoozed"
    assert not done.after.snoozed and done.after.reminders_from == minutes(9)


def test_everything_is_refused_on_a_resolved_alert() -> None:
    closed = fresh(resolved=True, snooze_kind="green", acked_by="U1")
    for result in (rules.acknowledge(closed, "U1", T0), rules.unacknowledge(closed, "U1", T0),
                   rules.assign(closed, "U1", "U2", T0),
                   rules.snooze(closed, "U1", SnoozeSpec("green"), T0),
                   rules.unsnooze(closed, "U1", T0), rules.bisect_refusal(closed)):
        assert result == Refusal("resolved")
    assert rules.wake(closed, "job", T0) is None


def test_bisect_refused_while_one_runs() -> None:
    assert rules.bisect_refusal(fresh()) is None
    refused = rules.bisect_refusal(fresh(bisect_status="round 1"))
    assert refused == Refusal("bisecting", detail="round 1")


def test_wake_ends_only_a_snooze() -> None:
    assert rules.wake(fresh(), "job", T0) is None
    woke = rules.wake(fresh(snoozed_until=minutes(600), snooze_kind="duration"), "job", T0)
    assert isinstance(woke, Transition) and woke.event == "woke" and woke.data == {"key": "job"}
    assert not woke.after.snoozed and woke.actor is None


# ------------------------------------------------------------------- who may act


def test_may_act_by_user_or_group_membership() -> None:
    groups = {"S1": {"U2"}}
    assert rules.may_act("U9", (), groups)
    assert rules.may_act("U1", ("U1", "S1"), groups)
    assert rules.may_act("U2", ("U1", "S1"), groups)
    assert not rules.may_act("U3", ("U1", "S1"), groups)
    assert not rules.may_act("U2", ("U1", "S7"), groups)  # an unreadable group grants nothing


@pytest.mark.parametrize(("given_", "expected"), [("P2", "P1"), ("P1", "P0"), ("P0", "P0"),
                                                  ("high", "high")])
def test_raised_priority(given_: str, expected: str) -> None:
    assert rules.raised_priority(given_) == expected


# ------------------------------------------------------------------- snooze arguments


@pytest.mark.parametrize(("words", "expected"), [
    (["2h"], SnoozeSpec("duration", timedelta(hours=2))),
    (["30m"], SnoozeSpec("duration", timedelta(minutes=30))),
    (["1d"], SnoozeSpec("duration", timedelta(days=1))),
    (["1h30m"], SnoozeSpec("duration", timedelta(minutes=90))),
    (["GREEN"], SnoozeSpec("green")),
    (["until", "green"], SnoozeSpec("green")),
    (["until", "ABC1234"], SnoozeSpec("sha", sha="abc1234")),
])
def test_parse_snooze_accepts(words: list[str], expected: SnoozeSpec) -> None:
    assert parse_snooze(words) == expected


@pytest.mark.parametrize(("words", "problem"), [
    ([], "how long"),
    (["2x"], "'2x' is not a duration"),
    (["0m"], "not a positive duration"),
    (["15d"], "longer than the longest snooze"),
    (["until"], "one commit sha"),
    (["until", "xyz"], "'xyz' is not a commit sha"),
    (["until", "abc"], "is not a commit sha"),
    (["2h", "extra"], "expected one of"),
])
def test_parse_snooze_refuses(words: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_snooze(words)


# ------------------------------------------------------------------- nudges


def run_clock(state: TriageState, until_minutes: int, step: int = 1,
              route: Route = ROUTE) -> list[tuple[int, rules.Nudge]]:
    """Tick every ``step`` minutes, applying each nudge as the store would."""
    sent = []
    for m in range(0, until_minutes + 1, step):
        for nudge in due_nudges(state, route, minutes(m)):
            sent.append((m, nudge))
            state = nudge_transition(state, nudge, minutes(m)).after
    return sent


def test_reminders_repeat_then_escalate_once() -> None:
    sent = run_clock(fresh(), 300)
    assert sent == [
        (30, Reminder(1, ("S0ONCALL",))),
        (60, Reminder(2, ("S0ONCALL",))),
        (90, Reminder(3, ("S0ONCALL",))),
        (120, Escalation(("U0LEAD",), "P1")),
    ]


def test_reminders_fall_back_to_owners_and_escalation_to_oncall() -> None:
    route = replace(ROUTE, oncall=(), escalate_to=(), remind_limit=1)
    assert [n for _, n in run_clock(fresh(), 200, route=route)] == [
        Reminder(1, ("U0OWNER",)), Escalation((), "P1")]
    route = replace(ROUTE, escalate_to=())
    assert run_clock(fresh(), 120, route=route)[-1] == (120, Escalation(("S0ONCALL",), "P1"))


def test_no_burst_after_downtime() -> None:
    """A bot down from minute 10 to 100 sends one reminder at 100, the next 30 min later."""
    state = fresh()
    assert due_nudges(state, ROUTE, minutes(100)) == [Reminder(1, ("S0ONCALL",))]
    state = nudge_transition(state, Reminder(1, ("S0ONCALL",)), minutes(100)).after
    assert due_nudges(state, ROUTE, minutes(101)) == []
    assert due_nudges(state, ROUTE, minutes(119)) == []
    # escalation is due at 120 regardless of the reminder pacing
    assert due_nudges(state, ROUTE, minutes(120)) == [Escalation(("U0LEAD",), "P1")]


@pytest.mark.parametrize("owner", [{"acked_by": "U1"}, {"assignee": "U2"},
                                   {"bisect_status": "round 1"}, {"resolved": True}])
def test_owned_or_resolved_alerts_are_not_nudged(owner: dict[str, object]) -> None:
    assert run_clock(fresh(**owner), 600, step=10) == []


def test_snooze_expires_on_time_then_reminders_restart() -> None:
    state = fresh(snoozed_until=minutes(45), snooze_kind="duration", snoozed_by="U1")
    assert due_nudges(state, ROUTE, minutes(44)) == []
    assert due_nudges(state, ROUTE, minutes(45)) == [SnoozeExpiry()]
    after = nudge_transition(state, SnoozeExpiry(), minutes(45))
    assert after.event == "snooze_expired" and not after.after.snoozed
    assert due_nudges(after.after, ROUTE, minutes(74)) == []
    assert due_nudges(after.after, ROUTE, minutes(75)) == [Reminder(1, ("S0ONCALL",))]


def test_green_snooze_never_expires_and_sha_snooze_expires_on_results() -> None:
    green = fresh(snooze_kind="green")
    assert due_nudges(green, ROUTE, minutes(10_000)) == []
    sha = fresh(snooze_kind="sha", snooze_sha="abc1234", snoozed_until=minutes(1440))
    assert due_nudges(sha, ROUTE, minutes(10)) == []
    assert due_nudges(sha, ROUTE, minutes(10), sha_has_results=True) == [
        SnoozeExpiry(sha="abc1234")]
    assert due_nudges(sha, ROUTE, minutes(1440)) == [SnoozeExpiry()]  # the cap


def test_nudge_events_carry_mentions_and_age() -> None:
    reminder = nudge_transition(fresh(), Reminder(1, ("S0ONCALL",)), minutes(30))
    assert reminder.event == "reminder"
    assert reminder.data == {"mentions": ["S0ONCALL"], "n": 1, "age_s": 1800}
    escalation = nudge_transition(fresh(), Escalation(("U0LEAD",), "P1"), minutes(120))
    assert escalation.data == {"mentions": ["U0LEAD"], "priority": "P1", "age_s": 7200}
    assert escalation.after.escalated and escalation.after.escalated_at == minutes(120)


@given(st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=40))
def test_any_tick_pattern_sends_each_nudge_at_most_once(ticks: list[int]) -> None:
    """However irregular the ticks (restarts, slow scheduler), never more than the limit
    of reminders, never two escalations, and never two nudges closer than remind_every."""
    state = fresh()
    sent: list[tuple[int, rules.Nudge]] = []
    for m in sorted(ticks):
        for nudge in due_nudges(state, ROUTE, minutes(m)):
            sent.append((m, nudge))
            state = nudge_transition(state, nudge, minutes(m)).after
    reminders = [m for m, n in sent if isinstance(n, Reminder)]
    assert len(reminders) <= ROUTE.remind_limit
    assert [n.n for _, n in sent if isinstance(n, Reminder)] == list(
        range(1, len(reminders) + 1))
    assert sum(isinstance(n, Escalation) for _, n in sent) <= 1
    assert all(b - a >= 30 for a, b in zip(reminders, reminders[1:], strict=False))
    assert all(m >= 30 for m in reminders)
