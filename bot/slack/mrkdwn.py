"""Turning untrusted text into safe Slack mrkdwn: literal text, links, mentions, times.

Everything from CI (commit titles, authors, job names, log lines) goes through here.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from urllib.parse import quote

ELLIPSIS = "…"

# A user id (U..., or W... on Enterprise Grid) or a user-group id (S...).
_USER_ID = re.compile(r"^[UW][A-Z0-9]{1,20}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{1,20}$")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_SAFE_SCHEMES = ("https://", "http://", "mailto:")
_MAX_URL = 1000


def escape(text: str) -> str:
    """Escape the three characters Slack treats as control characters.

    After this, nothing in ``text`` can become a link, a ``<!channel>`` ping or a
    ``<@U...>`` mention, whatever a commit author put in their title.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Formatting characters swapped for look-alikes that Slack does not read as markup.
# Underscores inside a word (``inductor_huggingface``) never format, so they stay as
# they are (the name can still be searched for); only those at a word's edge change.
_FORMATTING = str.maketrans({"*": "∗", "~": "∼", "`": "ˋ"})
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def literal(text: str) -> str:
    """CI text shown as the literal text it is: ``escape`` plus bold, italic, strike and code.

    A commit titled ``*fix* the _thing_`` or a job named with backticks must read as
    written, not as formatting the bot never meant (and that could disguise a link's
    label or make a line look like the bot's own emphasis).
    """
    return _EDGE_UNDERSCORE.sub("＿", escape(text).translate(_FORMATTING))


def plain(text: str) -> str:
    """One line of printable text: ANSI colours and control characters gone, spaces collapsed.

    Log lines carry terminal colour codes and tabs; a newline inside an item would
    break the one-line-per-item layout of the alert.
    """
    return " ".join(_printable(text).split())


def _printable(text: str) -> str:
    """Drop ANSI sequences and invisible format characters; control characters become spaces.

    Format characters (bidi overrides, zero-width joiners) can make text read
    differently from what it is, so they go entirely.
    """
    return "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in _ANSI.sub("", text)
        if unicodedata.category(ch) not in ("Cf", "Cs", "Co")
    )


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, ending with an ellipsis when cut.

    Works on escaped text too: it never cuts an ``&amp;``-style entity in half, so the
    reader never sees a stray ``&am``.
    """
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    if limit == 1:
        return ELLIPSIS
    cut = limit - 1
    amp = text.rfind("&", max(0, cut - 5), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        cut = amp
    return text[:cut] + ELLIPSIS


def safe_url(url: str | None) -> str | None:
    """A URL that can sit inside ``<url|label>``, or None if it must not be linked.

    Only http(s)/mailto links are allowed: a "URL" such as ``!channel`` or
    ``@U123`` from a CI payload would otherwise become a ping. ``|``, ``<``, ``>``,
    whitespace and control characters are percent-encoded; ``&`` is escaped as
    Slack asks. Absurdly long URLs are dropped rather than cut (a cut URL is wrong).
    """
    if not url:
        return None
    url = url.strip()
    if not url.lower().startswith(_SAFE_SCHEMES) or len(url) > _MAX_URL:
        return None
    encoded = quote(url, safe="!#$%&'()*+,-./:;=?@[]_~")
    return encoded.replace("&", "&amp;")


def link(url: str | None, label: str) -> str:
    """``<url|label>`` with the label escaped; just the escaped label if the URL is unsafe.

    ``|`` in a label is replaced with a look-alike (``¦``) because Slack splits the
    link at the first ``|``; ``>`` is escaped so the label cannot close the link early.
    """
    shown = literal(plain(label)).replace("|", "¦") or "link"
    target = safe_url(url)
    if target is None:
        return shown
    return f"<{target}|{shown}>"


def code_line(text: str, limit: int = 200) -> str:
    """The first non-blank line of ``text`` as inline code: cleaned, cut, escaped, in backticks.

    Inner spacing is kept (pytest's ``E   `` prefixes and aligned columns read better).
    Backticks inside are swapped for a look-alike (``ˋ``) so the line cannot close
    the code span and let the rest be read as formatting. Returns "" for blank input.
    """
    lines = (_printable(line).strip() for line in _ANSI.sub("", text).splitlines())
    first = next((line for line in lines if line), "")
    if not first:
        return ""
    return f"`{truncate(escape(first.replace('`', 'ˋ')), limit)}`"


def mention(slack_id: str) -> str:
    """``<@U…>`` for a user, ``<!subteam^S…>`` for a user group, else the escaped text.

    The id is checked against Slack's id shapes so a stored value like ``!channel``
    can never be turned into a broadcast.
    """
    if _USER_ID.match(slack_id):
        return f"<@{slack_id}>"
    if _GROUP_ID.match(slack_id):
        return f"<!subteam^{slack_id}>"
    return literal(plain(slack_id))


def date(moment: datetime) -> str:
    """A Slack date token: each reader sees their own time zone; the fallback is UTC.

    Naive datetimes are taken as UTC (the store keeps UTC).
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    unix = int(moment.timestamp())
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{unix}^{{date_short_pretty}} {{time}}|{fallback}>"
