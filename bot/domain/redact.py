"""Removing configured secrets from text the bot did not write (probe output, error messages).

A bisect probe runs code from any commit in the range; whatever it prints may end up in
SQLite, the log and a Slack thread, so every configured secret is cut out first.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6  # shorter values would redact ordinary words; no real token is this short


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``[redacted]``.

    Longest first, so a secret that contains another is removed whole.
    """
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_CHARS},
                         key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text
