"""The slash command's grammar: text in, a parsed command or a usage error out (pure).

The command's name comes from the Slack app manifest; it is passed in only to quote
it back, so the same grammar works under any name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from bot.domain.alert_ids import parse_short_id
from bot.domain.triage import SNOOZE_USAGE, SnoozeSpec, parse_snooze
from bot.slack.mrkdwn import escape, literal

Verb = Literal["help", "list", "show", "ack", "unack", "assign", "snooze", "unsnooze",
               "resolve", "bisect", "bisect_cancel", "retry"]

USAGE: dict[str, tuple[str, str]] = {
    "help": ("help", "this help"),
    "list": ("list [all]", "open alerts of this channel's routes, or of all routes"),
    "show": ("show ID", "one alert with its buttons"),
    "ack": ("ack [ID]", "acknowledge: you are looking at it (stops reminders)"),
    "unack": ("unack [ID]", "withdraw the acknowledgement"),
    "assign": ("assign [ID] @user|me", "make someone the owner"),
    "snooze": (f"snooze [ID] {SNOOZE_USAGE}", "quiet until then; a new failing job wakes it"),
    "unsnooze": ("unsnooze [ID]", "end a snooze now"),
    "resolve": ("resolve [ID] [reason]", "close the alert by hand"),
    "retry": ("retry [ID]", "rerun the failed jobs of the newest failing commit, once each"),
    "bisect": ("bisect [ID] [job] | bisect cancel [ID]",
               "find the culprit commit by rerunning the job, or stop that"),
}
_ALIASES = {"acknowledge": "ack", "unacknowledge": "unack", "ls": "list", "?": "help"}
_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_TOKEN = re.compile(r"<[^>]*>|\S+")
REASON_CHARS = 500


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A well-formed command; ``alert_id`` None means "the one open alert of this channel"."""

    verb: Verb
    alert_id: int | None = None
    all: bool = False
    user: str | None = None  # a Slack user id, or "me"
    snooze: SnoozeSpec | None = None
    reason: str | None = None
    job: str | None = None


@dataclass(frozen=True, slots=True)
class UsageError:
    """A command that cannot run, with the ephemeral answer (mrkdwn) that says why."""

    message: str


def parse_command(name: str, text: str) -> Command | UsageError:
    """Parse the text after the command name; nothing here touches the database."""
    tokens = _TOKEN.findall(text or "")
    if not tokens:
        return Command(verb="help")
    word = tokens[0].lower()
    verb = _ALIASES.get(word, word)
    args = tokens[1:]

    def error(problem: str) -> UsageError:
        return UsageError(usage_message(name, text, verb, problem))

    if verb not in USAGE:
        return UsageError(usage_message(
            name, text, None, f"Unknown sub-command {_code(tokens[0])}."))
    if verb == "help":
        return Command(verb="help")
    if verb == "list":
        if not args:
            return Command(verb="list")
        if len(args) == 1 and args[0].lower() == "all":
            return Command(verb="list", all=True)
        return error(f"`list` takes nothing or `all`, not {_code(' '.join(args))}.")

    alert_id, args = _take_id(args)
    if verb == "show":
        if alert_id is None:
            return error("`show` needs an alert id such as `A12`.")
        if args:
            return error(f"Unexpected {_code(' '.join(args))} after the alert id.")
        return Command(verb="show", alert_id=alert_id)
    if verb in ("ack", "unack", "unsnooze", "retry"):
        if args:
            return error(f"`{verb}` takes only an alert id, not {_code(' '.join(args))}.")
        return Command(verb=verb, alert_id=alert_id)  # type: ignore[arg-type]
    if verb == "assign":
        if len(args) != 1:
            return error("`assign` needs exactly one person: an @-mention or `me`.")
        user = _user(args[0])
        if user is None:
            return error(f"{_code(args[0])} is not a Slack user. Pick the person from "
                         "Slack's @-autocomplete (so the command receives a mention) "
                         "or say `me`.")
        return Command(verb="assign", alert_id=alert_id, user=user)
    if verb == "snooze":
        try:
            spec = parse_snooze(args)
        except ValueError as exc:
            problem = literal(str(exc))
            return error(problem[:1].upper() + problem[1:] + ".")
        return Command(verb="snooze", alert_id=alert_id, snooze=spec)
    rest = " ".join(args).strip() or None
    if verb == "resolve":
        if rest is not None and len(rest) > REASON_CHARS:
            return error(f"The reason is {len(rest)} characters; at most {REASON_CHARS}.")
        return Command(verb="resolve", alert_id=alert_id, reason=rest)
    if args and args[0].lower() == "cancel":  # `bisect cancel [ID]` (or `bisect ID cancel`)
        later_id, extra = _take_id(args[1:])
        if extra or (alert_id is not None and later_id is not None):
            return error("`bisect cancel` takes only an alert id.")
        return Command(verb="bisect_cancel", alert_id=alert_id if later_id is None else later_id)
    return Command(verb="bisect", alert_id=alert_id, job=rest)


def _take_id(args: list[str]) -> tuple[int | None, list[str]]:
    """An optional leading alert id (``A12`` or ``12``), and the arguments after it."""
    alert_id = parse_short_id(args[0]) if args else None
    return (alert_id, args[1:]) if alert_id is not None else (None, args)


def _user(token: str) -> str | None:
    if token.lower() == "me":
        return "me"
    match = _MENTION.match(token)
    return match.group(1) if match else None


def _code(text: str) -> str:
    """Untrusted text as inline code; a backtick inside would end the span, so it is swapped."""
    return f"`{escape(text.replace('`', 'ˋ'))}`"


def usage_message(name: str, text: str, verb: str | None, problem: str) -> str:
    """The ephemeral answer to a bad command: the problem, the input quoted, the usage.

    ``problem`` is mrkdwn already escaped by the caller; the input is escaped here.
    With ``verb`` None (an unknown sub-command) every usage line is shown.
    """
    lines = [f":warning: {problem}", f"You typed: {_code(f'{name} {text}'.strip())}"]
    if verb == "bisect_cancel":  # a form of `bisect`: its usage line shows both
        verb = "bisect"
    if verb in USAGE:
        lines.append(f"Usage: `{escape(name)} {escape(USAGE[verb][0])}`")
    else:
        lines.append(help_text(name))
    return "\n".join(lines)


def help_text(name: str) -> str:
    """Every sub-command with a line on what it does; ``ID`` may be left out when
    exactly one alert is open in the channel."""
    lines = ["*Usage:*"]
    lines += [f"• `{escape(name)} {escape(usage)}`: {what}" for usage, what in USAGE.values()]
    lines.append("`ID` is the alert's short id (`A12`); leave it out when exactly one alert "
                 "is open for this channel.")
    return "\n".join(lines)
