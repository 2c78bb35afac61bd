"""Who people are in Slack: a user's display name, a user id by email, a user group's handle
and members.

Every lookup that names or finds a person goes through here, so the rule for a
display name, and what a failed lookup means, is written once.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from bot.slack.client import SlackApi, SlackError

log = logging.getLogger(__name__)


def display_name(user: dict[str, Any]) -> str | None:
    """The name Slack shows for a ``users.info`` user: display name, real name, then handle."""
    profile = user.get("profile") or {}
    return profile.get("display_name") or profile.get("real_name") or user.get("name") or None


def user_name(api: SlackApi, user_id: str) -> tuple[bool, str | None]:
    """Whether Slack knows the user, and their display name when it could be read.

    Only ``user_not_found`` means "no such user"; any other failure keeps the user
    (unnamed): a Slack hiccup must not refuse an assignment to a real person.
    """
    try:
        response = api.call("users.info", user=user_id)
    except SlackError as exc:
        if exc.code == "user_not_found":
            return False, None
        log.info("users.info %s failed (%s); naming them by id", user_id, exc.code)
        return True, None
    return True, display_name(response.get("user") or {})


def user_id_by_email(api: SlackApi, email: str) -> str | None:
    """The Slack user with this email (``users.lookupByEmail``), or None when there is none."""
    try:
        answer = api.call("users.lookupByEmail", email=email)
    except SlackError as exc:
        log.info("no Slack user for %s: %s", email, exc)
        return None
    user = answer.get("user") or {}
    return str(user["id"]) if user.get("id") else None


def group_handle(api: SlackApi, group_id: str) -> str | None:
    """A user group's ``@handle`` (``usergroups.list``), to name it without pinging it."""
    try:
        response = api.call("usergroups.list")
    except SlackError as exc:
        log.info("usergroups.list failed (%s); naming %s by id", exc.code, group_id)
        return None
    for group in response.get("usergroups") or ():
        if isinstance(group, dict) and group.get("id") == group_id:
            return str(group.get("handle") or group.get("name") or "") or None
    return None


def group_members(api: SlackApi, ids: Collection[str]) -> dict[str, set[str]]:
    """Expand the user groups (``S...``) among ``ids`` with ``usergroups.users.list``.

    A group that cannot be read counts as empty: refusing is safer than allowing.
    """
    members: dict[str, set[str]] = {}
    for group in ids:
        if not group.startswith("S"):
            continue
        try:
            response = api.call("usergroups.users.list", usergroup=group)
        except SlackError as exc:
            log.warning("cannot expand user group %s: %s", group, exc)
            response = {}
        members[group] = set(response.get("users") or ())
    return members
