"""What the thread says about a culprit: its commit, its author in Slack, the next step.

The author is mentioned only when the route maps them (``authors``) or Slack finds
their email; anything else is shown by name, never guessed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlite_utils

from bot.bisect.config import BisectConfig
from bot.store import history
from bot.store.bisects import Bisect

UserByEmail = Callable[[str], "str | None"]
"""Finds a chat user id by email (Slack's ``users.lookupByEmail``); None when there is none."""

PYTORCH_REVERT = '@pytorchbot revert -m "Broke {key}; found by bisect" -c nosignal'


def author_slack_id(author: str, config: BisectConfig,
                    user_by_email: UserByEmail | None) -> str | None:
    """The author's Slack user id: the route's ``authors`` map, else a lookup by email."""
    if not author:
        return None
    mapped = config.authors.get(author.lower())
    if mapped:
        return mapped
    if "@" not in author or user_by_email is None:
        return None
    return user_by_email(author)


def revert_hint(bisect: Bisect, config: BisectConfig, sha: str, pr: int | None) -> str:
    """The suggested next step: the route's ``revert`` template, else a sensible default.

    PyTorch reverts by commenting on the PR for its merge bot; elsewhere ``git revert``.
    A template that needs ``{pr}`` falls back to ``git revert`` when the PR is unknown.
    """
    template = config.revert
    if template is None:
        template = PYTORCH_REVERT if pr is not None and bisect.repo.startswith("pytorch/") else ""
    if "{pr}" in template and pr is None:
        template = ""
    if not template:
        return f"git revert {sha}"
    return template.format(sha=sha, short_sha=sha[:12], pr=pr or "", job=bisect.job_key,
                           key=bisect.job_key, repo=bisect.repo)


def found_event_data(db: sqlite_utils.Database, bisect: Bisect, config: BisectConfig,
                     user_by_email: UserByEmail | None, culprit: str, parent: str | None,
                     runs: int, rounds: int) -> dict[str, Any]:
    """The ``bisect_found`` event's data: everything the thread reply shows."""
    commit = history.get_commit(db, bisect.repo, bisect.branch, culprit)
    title = commit.title if commit else ""
    author = commit.author if commit else ""
    pr = commit.pr_number if commit else None
    return {
        "sha": culprit,
        "parent": parent,
        "title": title,
        "author": author,
        "author_slack": author_slack_id(author, config, user_by_email),
        "pr": pr,
        "revert": revert_hint(bisect, config, culprit, pr),
        "confirmed": int(bisect.limits.get("confirm_runs", 0)) > 0,
        "key": bisect.job_key,
        "runs": runs,
        "rounds": rounds,
    }
