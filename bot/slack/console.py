"""Console mode (no ``SLACK_BOT_TOKEN``): Slack played locally, every message printed as read.

``ConsoleApi`` answers each Web API call the way Slack would, sends nothing anywhere, and
prints what a person in the channel would see: new messages, edits (the whole message
as it now reads) and thread replies, ephemeral notes and Home tabs. ``ConsoleAnswers``
stands in for Bolt's ``respond`` (the ``response_url`` answer Slack would show), so slash
commands and clicks are answered on the console as well.
"""

from __future__ import annotations

import difflib
import itertools
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.slack.block_text import Footnotes, message_text, view_text

log = logging.getLogger(__name__)

Write = Callable[[str], None]
REMEMBERED_MESSAGES = 500  # messages whose last text is kept to show their edits as changes
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)\|([^<>|]+)>")


def _stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class ConsoleApi:
    """The Web API in console mode: answers like Slack, shows each message as text."""

    def __init__(self, write: Write | None = None) -> None:
        self._write = write or _stdout
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self.posted: list[tuple[str, dict[str, Any]]] = []  # every call, in order
        # (channel, ts) -> the message as last shown, and its link numbers
        self._shown: dict[tuple[str, str], tuple[str, Footnotes]] = {}
        self._names: dict[str, str] = {}  # user id -> name, learnt from requests
        self.transcript: list[str] = []  # every message shown, as printed

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        with self._lock:
            # unique across restarts, shaped like Slack's: seconds.serial
            ts = f"{int(time.time())}.{next(self._serial):06d}"
            self.posted.append((method, params))
        channel = str(params.get("channel") or "")
        if method == "chat.postMessage":
            thread = params.get("thread_ts")
            what = f"reply in the thread of {thread}" if thread else f"new message {ts}"
            notes = Footnotes()
            shown = message_text(params.get("text"), params.get("blocks"), notes)
            if not thread:  # the bot edits only top-level messages (alert parents)
                self._remember(channel, ts, shown, notes)
            self.show(f"#{channel} · {what}", shown, reply=bool(thread))
            return {"ok": True, "channel": channel, "ts": ts,
                    "message": {"ts": ts, "text": params.get("text", "")}}
        if method == "chat.update":
            edited = str(params.get("ts"))
            with self._lock:
                before, notes = self._shown.get((channel, edited), (None, Footnotes()))
            shown = message_text(params.get("text"), params.get("blocks"), notes)
            self._remember(channel, edited, shown, notes)
            self.show(*_edit(f"#{channel} · message {edited} edited", before, shown))
            return {"ok": True, "channel": channel, "ts": params.get("ts")}
        if method == "chat.postEphemeral":
            self.show(f"#{channel} · only @{params.get('user')} sees this",
                      message_text(params.get("text"), params.get("blocks")))
            return {"ok": True, "message_ts": ts}
        if method == "views.publish":
            view = params.get("view") or {}
            self.show(f"App Home of @{params.get('user_id')}",
                      view_text(view if isinstance(view, Mapping) else {}))
            return {"ok": True, "view": {"id": f"VCONSOLE{ts}"}}
        if method in ("conversations.history", "conversations.replies"):
            return {"ok": True, "messages": [], "has_more": False}
        if method == "chat.getPermalink":
            return {"ok": True, "permalink": f"console://{channel}/{params.get('message_ts')}"}
        if method == "usergroups.users.list":
            return {"ok": True, "users": []}
        if method == "users.info":
            with self._lock:
                name = self._names.get(str(params.get("user") or ""))
            if name:
                return {"ok": True, "user": {"id": params.get("user"), "name": name,
                                             "profile": {"display_name": name}}}
        # users.info, users.lookupByEmail and the rest: Slack knows nobody here
        return {"ok": True}

    def _remember(self, channel: str, ts: str, shown: str, notes: Footnotes) -> None:
        """Keep how a message was last shown, for its next edit; the oldest go first."""
        with self._lock:
            self._shown.pop((channel, ts), None)
            self._shown[(channel, ts)] = (shown, notes)
            while len(self._shown) > REMEMBERED_MESSAGES:
                del self._shown[next(iter(self._shown))]

    def learn_name(self, user_id: str, name: str) -> None:
        """Remember a person's name from a request (Slack would answer users.info with it)."""
        if user_id and name:
            with self._lock:
                self._names[user_id] = name

    def show(self, header: str, body: str, reply: bool = False) -> None:
        """Print one message under a header line naming where it went and what it is.

        A thread reply is indented under a ``↳``, as Slack shows it under its parent.
        """
        lines = body.splitlines()
        if reply:
            lines = [("  ↳ " if i == 0 else "    ") + line if line else ""
                     for i, line in enumerate(lines)]
        text = "\n".join([f"── {header} ──", *lines])
        log.debug("console: %s", header)
        with self._lock:
            self.transcript.append(text)
            self._write(text + "\n\n")


def _edit(header: str, before: str | None, after: str) -> tuple[str, str]:
    """An edit as a reader notices it: the lines that changed (``-`` was, ``+`` now).

    The whole message when its earlier text is unknown (posted before a restart).
    """
    if before is None:
        return f"{header}, now reads", after
    changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(),
                                                     lineterm="", n=0)
               if not line.startswith(("---", "+++", "@@"))]
    if not changed:
        return f"{header} (no visible change)", ""
    return header, "\n".join(f"{line[0]} {line[1:]}" for line in changed)


class ConsoleAnswers:
    """Bolt's ``respond`` for one request in console mode: prints and keeps each answer.

    Slack would show these at the request's ``response_url``; here nothing is sent. A
    slash command's answer also goes back in the HTTP response, which Slack shows too.
    """

    def __init__(self, console: ConsoleApi, request: Mapping[str, Any]) -> None:
        self.console = console
        self.messages: list[dict[str, Any]] = []
        self.command = request.get("command")
        who = request.get("user") if isinstance(request.get("user"), Mapping) else {}
        self.user = str(request.get("user_id") or who.get("id") or "?")
        console.learn_name(self.user, str(request.get("user_name") or who.get("username")
                                          or who.get("name") or ""))
        for user_id, name in _MENTION.findall(str(request.get("text") or "")):
            console.learn_name(user_id, name)  # "assign <@U0ALICE|alice>" names alice
        if self.command:
            self.origin = f"{self.command} {request.get('text') or ''}".strip()
        else:
            actions = request.get("actions") or [{}]
            self.origin = f"the click on {actions[0].get('action_id', '?')}"

    def __call__(self, text: str | Mapping[str, Any] = "", blocks: Any = None,
                 response_type: str | None = None, **options: Any) -> None:
        message: dict[str, Any] = dict(text) if isinstance(text, Mapping) else {"text": text}
        if blocks is not None:
            message["blocks"] = blocks
        if response_type is not None:
            message["response_type"] = response_type
        message.update({k: v for k, v in options.items() if v is not None})
        self.messages.append(message)
        self.console.show(f"answer to {self.origin} · only @{self.user} sees this",
                          message_text(message.get("text"), message.get("blocks")))

    def acknowledged(self, body: str) -> None:
        """Show an answer given in the acknowledgement itself (help, usage errors)."""
        try:
            message = json.loads(body) if body else None
        except ValueError:
            message = {"text": body}
        if isinstance(message, dict) and (message.get("text") or message.get("blocks")):
            self.console.show(f"answer to {self.origin} · only @{self.user} sees this",
                              message_text(message.get("text"), message.get("blocks")))

    def http_answer(self) -> dict[str, Any] | None:
        """What to answer a slash command with over HTTP: its last ``respond`` message."""
        return self.messages[-1] if self.command and self.messages else None
