"""The words for an alert's evidence: verdict tags, short names for failed runs, and how
failed runs group (same error, infrastructure apart). Pure; ``render`` places them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.signatures import group_by_signature
from bot.slack.mrkdwn import code_line, literal, plain, truncate
from bot.slack.view import FailedRunView

VERDICT_TAGS = {
    "real": ":dart: looks real",
    "flaky": ":game_die: looks flaky",
    "infra": ":construction: infrastructure",
    "unclear": ":grey_question: unclear",
}
STATE_WORDS = {
    "wanted": "log not read yet",
    "gone": "log expired",
    "failed": "log could not be read",
    "none": "no error line",
}
_PATH = re.compile(r"^[\w.~-]*(?:/[\w.*~-]*)+$")  # torch/_inductor/x.py, torch/_inductor/**
_MODULE = re.compile(r"^[a-z_]\w*(?:\.[a-z_]\w*)+$")  # torch._inductor.codecache
_SHARD = re.compile(r"\(([^,()]+),\s*(\d+)\s*,\s*(\d+)\s*(?:,[^()]*)?\)\s*$")


def run_label(run: FailedRunView) -> str:
    """A failed run's short name: its config and shard (``inductor_huggingface 2/3``), else
    the last part of its job name."""
    match = _SHARD.search(run.job_name)
    if match:
        return f"{match.group(1).strip()} {match.group(2)}/{match.group(3)}"
    return run.job_name.rsplit(" / ", 1)[-1]


@dataclass(frozen=True, slots=True)
class RunGroup:
    """Failed runs shown as one line: the same error (or the same infra cause, or one run
    whose log says nothing yet)."""

    runs: tuple[FailedRunView, ...]
    line: str | None  # the error to show (the first member's), None: ``state`` says why
    state: str  # the first member's evidence state

    @property
    def size(self) -> int:
        return len(self.runs)


def code_groups(runs: Sequence[FailedRunView]) -> list[RunGroup]:
    """Runs that did not fail for infrastructure, grouped by signature, first seen first."""
    code = [r for r in runs if r.kind != "infra"]
    groups = group_by_signature([(i, r.signature if r.state == "done" else None)
                                 for i, r in enumerate(code)])
    out: list[RunGroup] = []
    for group in groups:
        members = tuple(code[i] for i in group.members)  # type: ignore[index]
        first = members[0]
        out.append(RunGroup(members, first.line if first.state == "done" else None, first.state))
    return out


def infra_groups(runs: Sequence[FailedRunView]) -> list[RunGroup]:
    """Runs that failed for infrastructure, one group per cause."""
    by_cause: dict[str, list[FailedRunView]] = {}
    for run in runs:
        if run.kind == "infra":
            by_cause.setdefault(run.cause or "infrastructure", []).append(run)
    return [RunGroup(tuple(members), cause, "done") for cause, members in by_cause.items()]


def verdict_words(verdict: str | None, evidence: Sequence[str],
                  against: Sequence[str]) -> str:
    """``looks real: the same error on 4 failing commits in a row``, with the other side
    after "but"; "" when there is nothing to say yet."""
    if verdict is None or verdict not in VERDICT_TAGS:
        return ""
    if verdict == "unclear" and not against:
        return ""  # "no error lines yet" and the like: the errors section says it already
    text = VERDICT_TAGS[verdict]
    if evidence:
        text += ": " + "; ".join(evidence[:2])
    if against:
        text += "; but " + "; ".join(against[:2])
    return text


def reason_text(reason: str, limit: int) -> str:
    """A suspect's reason in mrkdwn: file paths, globs and dotted modules as inline code
    (read as written: ``torch/_inductor/**``), the words around them as literal text."""
    words = []
    for word in plain(reason).split(" "):
        core = word.lstrip("(")
        head = word[: len(word) - len(core)]
        tail = ""
        while core and core[-1] in ",;:)":
            core, tail = core[:-1], core[-1] + tail
        if _PATH.match(core) or _MODULE.match(core):
            words.append(literal(head) + code_line(core, 200) + literal(tail))
        else:
            words.append(literal(word))
    return truncate(" ".join(words), limit)


def has_evidence(runs: Sequence[FailedRunView]) -> bool:
    """Whether any failed run has something to say (a line, or a log that is being read,
    has expired or could not be read); runs with nothing recorded at all say nothing."""
    return any(r.state != "none" or r.line for r in runs)
