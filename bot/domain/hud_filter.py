"""The HUD name filter that shows exactly an alert's jobs: an anchored regular expression.

HUD's ``name_filter`` is a case-insensitive substring match unless the URL also carries
``useRegexFilter=true``; as substrings, ``inductor_huggingface|inductor_timm`` matched
nothing and ``inductor_huggingface`` also matched its ``dynamic_``/``aot_``/``cpu_``
variants. Each job key becomes one anchored alternative that accepts the key's shards
(``test (inductor_huggingface, 1, 2, linux.g5...)``) and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REGEX_FLAG = "useRegexFilter=true"
# characters special in a JavaScript regular expression (HUD runs the filter in JS)
_SPECIAL = frozenset("\\^$.|?*+()[]{}")


def js_escape(text: str) -> str:
    """``text`` matched literally by a JavaScript (or Python) regular expression."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


# the shard details a key drops from each group: ", 2, 3" and maybe ", linux.g5.4xlarge"
_SHARDS = r"(?:,\s*\d+,\s*\d+(?:,\s*[^,)]*)?)?"
_GROUP = re.compile(r"\(([^()]*)\)")


def key_pattern(key: str) -> str:
    """One job key as a pattern for its HUD job names (the key with any shard details).

    ``test (inductor_huggingface)`` matches ``test (inductor_huggingface, 1, 2,
    linux.g5...)``; a kept qualifier stays in place: ``test (default, unstable)``
    matches ``test (default, 1, 2, linux.2xl, unstable)``. Anything else is literal.
    """
    out: list[str] = []
    at = 0
    for group in _GROUP.finditer(key):
        out.append(js_escape(key[at:group.start()]))
        first, *rest = group.group(1).split(",")
        out.append("\\(" + js_escape(first) + _SHARDS
                   + "".join("," + js_escape(part) for part in rest) + "\\)")
        at = group.end()
    out.append(js_escape(key[at:]))
    return "".join(out)


def name_filter(keys: Iterable[str]) -> str:
    """An anchored regex matching exactly the HUD names of ``keys`` (in order, no repeats)."""
    patterns = list(dict.fromkeys(key_pattern(k) for k in keys))
    if not patterns:
        return ""
    return "^(?:" + "|".join(patterns) + ")$"
