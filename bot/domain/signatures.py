"""Failure signatures: one short text that two jobs share when they fail the same way.

The headline error with the noise taken out (addresses, numbers, temporary paths,
timings), so the same breakage in three shards, or on five commits in a row, reads the
same. See ``EVIDENCE.md`` beside this file.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from bot.domain.failure_classes import Classification, FailureClass
from bot.domain.failure_lines import FailureLines, KeyLine, LineKind

SIGNATURE_CHARS = 200
TESTS_IN_SIGNATURE = 5

_PYTEST_PREFIX = re.compile(r"^(?:FAILED|ERROR)\s+(?:\[[\d.]+m?s\]\s+)?\S+\s+-\s+")
_HEX_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]+\b")
_HEX_RUN = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b")  # shas, hashes, uuid parts
_TMP_PATH = re.compile(r"(?:/tmp|/var/folders|/private/var)/\S*?([^/\s'\"]+)(?=['\"\s]|$)")
# an absolute path: its last three components say what it is; the prefix is the runner's
_ABSOLUTE = re.compile(r"(?<![\w.~])/(?:[^\s/'\"():,]+/)+(?P<tail>(?:[^\s/'\"():,]+/){2}"
                       r"[^\s/'\"():,]+)")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e[-+]?\d+)?(?:ms|us|ns|s|m|h|%|x|[KMG]i?B|B)?"
                     r"(?![\w])")
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """``text`` with what changes from run to run replaced by placeholders.

    Memory addresses become ``0x?``, long hex runs ``<hex>``, temporary paths their last
    component, other absolute paths their last three (the prefix is the runner's
    workspace or Python install), free-standing numbers ``#`` (with their unit); inner
    space is collapsed. Numbers inside names (``test_conv2d``, ``sm86``, ``cuda12``)
    stay: they say which thing failed.
    """
    text = _HEX_ADDRESS.sub("0x?", text)
    text = _HEX_RUN.sub("<hex>", text)
    text = _TMP_PATH.sub(r"<tmp>/\1", text)
    text = _ABSOLUTE.sub(r"…/\g<tail>", text)
    text = _NUMBER.sub("#", text)
    text = _SPACES.sub(" ", text).strip()
    return text[:SIGNATURE_CHARS]


def _message(line: KeyLine) -> str:
    """The error a line carries: a pytest summary's message part, else the line itself."""
    if line.kind is LineKind.TEST:
        stripped = _PYTEST_PREFIX.sub("", line.text, count=1)
        return stripped if stripped != line.text else ""
    return line.text


def signature(found: FailureLines, classification: Classification) -> str | None:
    """What identifies how one job failed, or None when nothing telling was found.

    - infrastructure: ``infra: <rule name>`` (one cause, whatever the line said);
    - a failed test whose error is known, an exception, a compiler or other error: the
      normalised error text (``RuntimeError: CUDA error: an illegal memory access``);
    - failed tests without an error text: the failed test ids (the first few, sorted);
    - otherwise an annotation or reported line; a bare "exit code" line is no signature.
    """
    if classification.kind is FailureClass.INFRA:
        return f"infra: {classification.rule or 'unknown cause'}"
    for line in found.lines:
        if line.kind in (LineKind.EXIT, LineKind.ANNOTATION, LineKind.REPORTED):
            continue
        message = _message(line)
        if message:
            return normalise(message)
    if found.tests:
        return "tests: " + ", ".join(sorted(found.tests)[:TESTS_IN_SIGNATURE])
    other = next((line for line in found.lines if line.kind is not LineKind.EXIT), None)
    return normalise(other.text) if other is not None else None


K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class SignatureGroup:
    """Jobs that failed the same way: the signature and the members, in first-seen order."""

    signature: str | None
    members: tuple[Hashable, ...]


def group_by_signature(signatures: Mapping[K, str | None] | Iterable[tuple[K, str | None]]
                       ) -> list[SignatureGroup]:
    """Members grouped by equal signature, groups in the order their first member came.

    Members without a signature (nothing found yet) are never grouped together: each is
    its own group, since "no error line" is not evidence that two jobs failed alike.
    """
    items = signatures.items() if isinstance(signatures, Mapping) else signatures
    groups: dict[object, list[Hashable]] = {}
    order: list[tuple[str | None, object]] = []
    for index, (member, sig) in enumerate(items):
        slot: object = sig if sig is not None else ("alone", index)
        if slot not in groups:
            groups[slot] = []
            order.append((sig, slot))
        groups[slot].append(member)
    return [SignatureGroup(sig, tuple(groups[slot])) for sig, slot in order]
