"""The alert message's buttons (Acknowledge, Resolve, Bisect, ...) over signed HTTP.

Clicks and the slash command run the same triage actions, so several tests drive both
front doors and check there is one winner and one answer each.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.support.slack_side import (
    Reply,
    SlackSide,
)


def test_buttons_run_the_same_actions(slack: SlackSide) -> None:
    slack.click("alert_ack", "U2")
    slack.wait_parent("*Acknowledged* by <@U2>")
    slack.click("alert_assign", "U2", choose="U3")
    slack.wait_parent("*Assigned* to <@U3>", "acknowledged by <@U2>")
    assert slack.row()["assignee"] == "U3" and slack.row()["assigned_by"] == "U2"
    slack.click("alert_snooze", "U3", choose="1h")
    slack.wait_parent(":zzz: *Snoozed* until")
    assert slack.row()["snooze_kind"] == "duration"
    slack.click("alert_unack", "U3")
    slack.wait_parent('"action_id": "alert_ack"')
    assert slack.row()["acked_by"] is None
    slack.click("alert_resolve", "U2")  # allowed through the S0FIXERS group
    slack.wait_parent(":white_check_mark: *Resolved*", "by <@U2>")
    assert slack.kinds()[-5:] == ["acknowledged", "assigned", "snoozed", "unacknowledged",
                                  "resolved"]
    assert slack.fake.responses() == []  # changes answer themselves: no ephemeral noise
    for needle in ("Acknowledged by", "<@U3>: *bob* assigned this alert to you", "Snoozed until",
                   "Acknowledgement withdrawn", "Resolved by"):
        slack.wait_reply(needle)


def test_parallel_clicks_and_commands_have_exactly_one_winner(slack: SlackSide) -> None:
    users = [f"U{i}" for i in range(1, 8)]
    parent = slack.parent()

    def act(user: str) -> Reply:
        if user in ("U6", "U7"):
            return slack.command("ack A1", user=user)
        return slack.click("alert_ack", user, source=parent)

    with ThreadPoolExecutor(len(users)) as pool:
        replies = list(pool.map(act, users))
    assert all(r.http.status_code == 200 for r in replies)
    assert slack.kinds().count("acknowledged") == 1
    winner = slack.row()["acked_by"]
    assert winner in users
    answers = {user: reply for user, reply in zip(users, replies, strict=True)}
    for user, reply in answers.items():
        if user == winner and user not in ("U6", "U7"):
            continue  # a winning click answers through the message itself
        text = reply.text()
        if user == winner:
            assert "You acknowledged A1" in text
        else:
            assert f"<@{winner}> already acknowledged A1" in text
    slack.wait_parent(f"*Acknowledged* by <@{winner}>")
    slack.wait_reply("Acknowledged by")
    assert sum("Acknowledged by" in t for t in slack.thread()) == 1


def test_resolve_and_bisect_are_limited_to_the_routes_resolvers(slack: SlackSide) -> None:
    before = slack.kinds()
    refused = slack.click("alert_resolve", "U3").text()
    assert refused == (":no_entry: Only <@U1>, <!subteam^S0FIXERS> may resolve alerts of "
                       "route `inductor`.")
    assert "may resolve" in slack.command("resolve A1 fixed", user="U3").text()
    assert "may bisect" in slack.command("bisect A1", user="U3").text()
    assert slack.row()["state"] == "open" and slack.kinds() == before
    groups = {c.params.get("usergroup") for c in slack.fake.calls_to("usergroups.users.list")}
    assert groups == {"S0FIXERS"}
    assert "Resolved A1" in slack.command("resolve fixed", user="U2").text()
    assert slack.row()["resolved_by"] == "U2"


def test_bisect_explains_it_is_not_configured(slack: SlackSide) -> None:
    before = slack.kinds()
    assert "Bisect is not configured" in slack.click("alert_bisect", "U1").text()
    assert "Bisect is not configured" in slack.command("bisect A1 inductor_timm").text()
    assert slack.kinds() == before and slack.row()["bisect_status"] is None


def test_losing_or_pointless_actions_are_refused_with_the_current_state(
        slack: SlackSide) -> None:
    assert "A1 is not snoozed" in slack.command("unsnooze").text()
    assert "A1 is not acknowledged" in slack.command("unack").text()
    stale = slack.parent()  # still showing the Acknowledge button
    slack.command("ack", user="U2").text()
    answer = slack.click("alert_ack", "U3", source=stale).text()
    assert "<@U2> already acknowledged A1 at <!date^" in answer
    assert "You already acknowledged A1" in slack.command("ack", user="U2").text()
    slack.command("assign A1 <@U3>").text()
    assert "A1 is already assigned to <@U3>" in slack.command("assign <@U3>").text()
    slack.command("resolve").text()
    assert "A1 is already resolved" in slack.command("ack A1").text()
    assert slack.kinds().count("acknowledged") == 1
