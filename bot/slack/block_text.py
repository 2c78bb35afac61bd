"""Slack messages as plain text, the way a person reads them in Slack (console mode shows these).

Generic over Block Kit (sections and their fields, context, actions, headers, dividers,
images, rich text) and mrkdwn (links, mentions, date tokens, entities, emoji), never over
this bot's own layouts, so the console keeps showing whatever ``render`` draws. Links
become numbered footnotes, as a reader sees a label and can follow it: ``log[2]`` in the
text, ``[2] https://...`` under the message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

RULE = "─" * 40

# The emoji this bot and Slack's own messages commonly use; others stay as :name:.
EMOJI = {
    "x": "❌", "white_check_mark": "✅", "heavy_check_mark": "✔️", "warning": "⚠️",
    "eyes": "👀", "red_circle": "🔴", "large_green_circle": "🟢", "zzz": "💤", "mag": "🔍",
    "bell": "🔔", "rotating_light": "🚨", "repeat": "🔁", "heavy_plus_sign": "➕",
    "bust_in_silhouette": "👤", "arrow_up": "⬆️", "alarm_clock": "⏰", "dart": "🎯",
    "no_entry_sign": "🚫", "construction": "🚧", "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳", "grey_question": "❔", "question": "❓",
    "leftwards_arrow_with_hook": "↩️", "tada": "🎉", "fire": "🔥", "wave": "👋",
    "information_source": "ℹ️", "memo": "📝", "link": "🔗", "calendar": "📅",
}

_TOKEN = re.compile(r"<([^<>]*)>")
_EMOJI = re.compile(r":([a-z0-9_+\-]+):")
_CODE = re.compile(r"(`[^`\n]*`)")
_BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]*?\S)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]*?\S)_(?![\w_])")
_ENTITIES = (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&"))


class Footnotes:
    """Numbered link targets of one message, each URL once.

    Kept across edits of the same message, a URL keeps its number: an edit then
    changes only the lines that really changed.
    """

    def __init__(self) -> None:
        self._numbers: dict[str, int] = {}
        self._used: list[str] = []

    def begin(self) -> None:
        """Start rendering one version of the message."""
        self._used = []

    def number(self, url: str) -> int:
        number = self._numbers.setdefault(url, len(self._numbers) + 1)
        if url not in self._used:
            self._used.append(url)
        return number

    def lines(self) -> list[str]:
        """The links this version uses, by number."""
        return [f"[{self._numbers[url]}] {url}"
                for url in sorted(self._used, key=self._numbers.__getitem__)]


def message_text(text: str | None, blocks: Sequence[Mapping[str, Any]] | None = None,
                 notes: Footnotes | None = None) -> str:
    """One message (its blocks, else its text) as lines of plain text with link footnotes.

    Pass the ``notes`` of an earlier version of the same message to keep its numbers.
    """
    notes = notes if notes is not None else Footnotes()
    notes.begin()
    if blocks:
        lines = [line for block in blocks for line in block_lines(block, notes)]
    else:
        lines = mrkdwn(text or "", notes).splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    footer = notes.lines()
    return "\n".join(lines + ([""] + footer if footer else []))


def view_text(view: Mapping[str, Any]) -> str:
    """A Home tab or modal: its title (if any), then its blocks."""
    title = view.get("title")
    head = [plain_text(title)] if isinstance(title, Mapping) else []
    body = message_text(None, view.get("blocks") or [])
    return "\n".join([*head, body]) if head else body


# --- blocks -----------------------------------------------------------------------------


def block_lines(block: Mapping[str, Any], notes: Footnotes) -> list[str]:
    kind = block.get("type")
    if kind == "section":
        return _section(block, notes)
    if kind == "context":
        parts = [_element(e, notes) for e in block.get("elements") or []]
        return [" ".join(p for p in parts if p)]
    if kind == "actions":
        return ["  ".join(_element(e, notes) for e in block.get("elements") or [])]
    if kind == "divider":
        return [RULE]
    if kind == "header":
        title = plain_text(block.get("text"))
        return [title, "═" * min(len(title), 60)]
    if kind == "image":
        return [_image(block)]
    if kind == "rich_text":
        return _rich_text(block.get("elements") or [], notes).splitlines()
    if kind == "input":
        label = plain_text(block.get("label"))
        return [f"{label}: {_element(block.get('element') or {}, notes)}"]
    return [f"[{kind} block]"]


def _section(block: Mapping[str, Any], notes: Footnotes) -> list[str]:
    lines = text_object(block.get("text"), notes).splitlines() if block.get("text") else []
    for field in block.get("fields") or []:
        # a field is a small cell, usually "*Label*\nvalue": one line reads the same
        lines.append("  " + " ".join(text_object(field, notes).split("\n")))
    accessory = block.get("accessory")
    if accessory:
        shown = _element(accessory, notes)
        if lines:
            lines[-1] += f"  {shown}"
        else:
            lines.append(shown)
    return lines


def _element(element: Mapping[str, Any], notes: Footnotes) -> str:
    """An interactive or context element as it looks: [ Button ], [ Menu ▾ ], an image's alt."""
    kind = element.get("type")
    if kind in ("mrkdwn", "plain_text"):
        return text_object(element, notes)
    if kind == "button":
        label = plain_text(element.get("text"))
        url = element.get("url")
        return f"[ {label} ]" + (f"[{notes.number(str(url))}]" if url else "")
    if kind == "image":
        return _image(element)
    if kind in ("users_select", "conversations_select", "channels_select", "static_select",
                "external_select", "multi_users_select", "multi_static_select", "overflow",
                "datepicker", "timepicker"):
        chosen = (element.get("initial_user") or element.get("initial_conversation")
                  or element.get("initial_channel"))
        initial = element.get("initial_option")
        if isinstance(initial, Mapping):
            label = plain_text(initial.get("text"))
        elif chosen:
            label = f"@{chosen}" if kind.endswith("users_select") else f"#{chosen}"
        else:
            label = plain_text(element.get("placeholder")) or "…"
        return f"[ {label} ▾ ]"
    if kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        return f"[ {plain_text(element.get('placeholder')) or '…'} ]"
    return f"[{kind}]"


def _image(element: Mapping[str, Any]) -> str:
    return f"[image: {element.get('alt_text') or 'image'}]"


def _rich_text(elements: Sequence[Any], notes: Footnotes) -> str:
    out: list[str] = []
    for element in elements:
        if not isinstance(element, Mapping):
            continue
        kind = element.get("type")
        if kind in ("rich_text_section", "rich_text_preformatted", "rich_text_quote"):
            out.append(_rich_text(element.get("elements") or [], notes))
            if kind != "rich_text_section":
                out.append("\n")
        elif kind == "rich_text_list":
            for item in element.get("elements") or []:
                out.append("• " + _rich_text([item], notes).strip() + "\n")
        elif kind == "text":
            out.append(str(element.get("text", "")))
        elif kind == "link":
            label = element.get("text") or element.get("url", "")
            out.append(f"{label}[{notes.number(str(element.get('url', '')))}]")
        elif kind == "user":
            out.append(f"@{element.get('user_id', '')}")
        elif kind == "usergroup":
            out.append(f"@{element.get('usergroup_id', '')}")
        elif kind == "channel":
            out.append(f"#{element.get('channel_id', '')}")
        elif kind == "broadcast":
            out.append(f"@{element.get('range', 'here')}")
        elif kind == "emoji":
            out.append(emoji(f":{element.get('name', '')}:"))
    return "".join(out)


# --- text -------------------------------------------------------------------------------


def text_object(obj: Any, notes: Footnotes) -> str:
    """A Block Kit text object (mrkdwn or plain_text), or a bare string taken as mrkdwn."""
    if isinstance(obj, Mapping):
        if obj.get("type") == "plain_text":
            return plain_text(obj)
        return mrkdwn(str(obj.get("text", "")), notes)
    return mrkdwn(str(obj or ""), notes)


def plain_text(obj: Any) -> str:
    if not isinstance(obj, Mapping):
        return str(obj or "")
    text = str(obj.get("text", ""))
    return emoji(text) if obj.get("emoji", True) else text


def mrkdwn(text: str, notes: Footnotes) -> str:
    """Slack mrkdwn as read: links as label and footnote, mentions as @name, dates as shown.

    Bold and italic markers go (Slack shows the emphasis, not the marks); code spans and
    ``~strike~`` keep theirs, since there the marks carry the meaning.
    """
    text = _TOKEN.sub(lambda m: _token(m.group(1), notes), text)
    parts = _CODE.split(text)  # odd parts are code spans, left exactly as written
    for i in range(0, len(parts), 2):
        parts[i] = emoji(_ITALIC.sub(r"\1", _BOLD.sub(r"\1", parts[i])))
    return _unescape("".join(parts))


def _token(inner: str, notes: Footnotes) -> str:
    target, _, label = inner.partition("|")
    if target.startswith(("@U", "@W", "@B")):
        return f"@{label or target[1:]}"
    if target.startswith("#C") or target.startswith("#G"):
        return f"#{label or target[1:]}"
    if target.startswith("!subteam^"):
        return label if label.startswith("@") else f"@{label or target[len('!subteam^'):]}"
    if target.startswith("!date^"):
        return label or target
    if target.startswith("!"):
        return f"@{target[1:]}"  # !here, !channel, !everyone
    url = _unescape(target)
    if not label or label == target:
        return url
    return f"{label}[{notes.number(url)}]"


def _unescape(text: str) -> str:
    for entity, char in _ENTITIES:
        text = text.replace(entity, char)
    return text


def emoji(text: str) -> str:
    return _EMOJI.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
