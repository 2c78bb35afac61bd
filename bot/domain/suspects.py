"""Suspect ranking: which commit of a regression range most likely broke the jobs, and why.

Each suspect is scored from evidence, as Chromium's Findit did: the files it touched
against the files and modules the failure lines name (traceback frames, failing test
files, compiler errors), and against the route's code area; reverts and relands are
recognised. Pure: plain data in, a ranking with reasons out. See ``EVIDENCE.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from bot.domain.failure_lines import FailureLines, LineKind

# weights of what a touched file can match; the reasons say which one scored
FRAME_WEIGHTS = (10, 7, 5, 4)  # innermost traceback frame first; outer frames get OUTER_FRAME
OUTER_FRAME = 3
COMPILER_FILE = 10
TEST_FILE = 8
MODULE = 6
NEIGHBOUR = 2  # touches a file in the directory of a strongly named file
AREA = 1  # touches the route's code area
RELAND = 1
DOCS_ONLY = -1
REVERTED_IN_RANGE = -20  # its change is gone again at the first red commit

REASONS_SHOWN = 3

# Frames in test harness code say where the failure was *noticed*, not caused.
_HARNESS = re.compile(r"(?:^|/)(?:unittest|_pytest|pytest|pluggy)/|(?:^|/)torch/testing/"
                      r"|(?:^|/)(?:contextlib|threading|runpy|functools)\.py$|^<")
_REVERT_TITLE = re.compile(r'^Revert\s+"(?P<title>.+)"\s*(?:\(#\d+\))?\s*$', re.IGNORECASE)
_REVERTS_SHA = re.compile(r"\bThis reverts commit (?P<sha>[0-9a-f]{7,40})\b", re.IGNORECASE)
_RELAND = re.compile(r"^\s*(?:\[\s*re-?land\s*\]|re-?land(?:ing|ed)?\b|reapply\b)",
                     re.IGNORECASE)
_DOCS = re.compile(r"(?:^|/)docs?/|\.(?:md|rst|txt)$|(?:^|/)(?:LICENSE|NOTICE|CODEOWNERS)$",
                   re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Change:
    """A suspect commit: its title and message (for reverts) and the files it touched.

    ``files`` None means not known yet (no push payload, commits API not asked yet).
    """

    sha: str
    title: str = ""
    message: str = ""
    files: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Clue:
    """A file or module the failure lines name, with how strongly it points at a change.

    ``module`` clues are dotted module paths turned into path prefixes
    (``torch/_inductor/codecache``): a file or package under them matches.
    """

    path: str
    weight: int
    why: str
    module: bool = False


@dataclass(frozen=True, slots=True)
class RankedSuspect:
    """One suspect with its score and the reasons behind it, strongest first."""

    sha: str
    score: int
    reasons: tuple[str, ...] = field(default_factory=tuple)
    position: int = 0  # index in the range, oldest first


def clues_from(failures: Iterable[FailureLines]) -> tuple[Clue, ...]:
    """What the failure lines of all failing jobs point at, strongest first, each path once.

    Traceback frames outside test harness code score by depth (innermost strongest); a
    compiler error's file and a failed test's file score high; modules named in errors
    (``cannot import name 'x' from 'torch._inductor.codecache'``) score as their files.
    """
    best: dict[tuple[str, bool], Clue] = {}

    def add(clue: Clue) -> None:
        key = (clue.path, clue.module)
        if key not in best or best[key].weight < clue.weight:
            best[key] = clue

    for found in failures:
        for line in found.lines:
            if line.kind is LineKind.EXCEPTION and line.frames:
                code = [f for f in reversed(line.frames) if not _HARNESS.search(f)]
                for depth, frame in enumerate(code):
                    weight = FRAME_WEIGHTS[depth] if depth < len(FRAME_WEIGHTS) else OUTER_FRAME
                    why = ("named in the traceback (innermost frame)" if depth == 0
                           else "named in the traceback")
                    add(Clue(_norm(frame), weight, why))
            elif line.kind is LineKind.BUILD and line.file:
                add(Clue(_norm(line.file), COMPILER_FILE, "named in the compiler error"))
            elif line.kind is LineKind.TEST and line.file:
                add(Clue(_norm(line.file), TEST_FILE, "the failing test's file"))
        for module in found.modules:
            add(Clue(module.replace(".", "/"), MODULE, f"module {module} named in the error",
                     module=True))
    return tuple(sorted(best.values(), key=lambda c: (-c.weight, c.path)))


def _norm(path: str) -> str:
    return path.replace("\\", "/").removeprefix("./")


def same_file(touched: str, named: str) -> bool:
    """One path is the other, or ends with it at a ``/``: log paths are absolute
    (``/opt/conda/.../site-packages/torch/_inductor/x.py``) or relative to ``test/``
    (``inductor/test_x.py``), touched paths are relative to the repository root."""
    if touched == named:
        return True
    return named.endswith("/" + touched) or touched.endswith("/" + named)


def _in_module(touched: str, module_path: str) -> bool:
    return (same_file(touched, module_path + ".py")
            or ("/" + touched).find("/" + module_path + "/") != -1)


def _directory(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _neighbours(touched: str, named: str) -> bool:
    mine, theirs = _directory(touched), _directory(named)
    if not mine or not theirs or "/" not in mine:
        return False  # a top-level directory ("torch") is too broad to mean anything
    return mine == theirs or ("/" + theirs).endswith("/" + mine) or (
        ("/" + mine).endswith("/" + theirs) and "/" in theirs)


@lru_cache(maxsize=256)
def glob_pattern(glob: str) -> re.Pattern[str]:
    """A path glob as a regex: ``**`` any depth, ``*`` within one directory, ``?`` one char."""
    out = []
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def in_area(path: str, area: Sequence[str]) -> str | None:
    """The first glob of ``area`` that ``path`` matches, or None."""
    return next((glob for glob in area if glob_pattern(glob).match(path)), None)


@dataclass(frozen=True, slots=True)
class _Revert:
    sha: str | None
    title: str | None


def _reverts(change: Change) -> _Revert | None:
    title = _REVERT_TITLE.match(change.title.strip())
    sha = _REVERTS_SHA.search(change.message)
    if title is None and sha is None:
        return None
    return _Revert(sha.group("sha").lower() if sha else None,
                   title.group("title").strip() if title else None)


def _reverted_target(revert: _Revert, changes: Sequence[Change]) -> int | None:
    for index, change in enumerate(changes):
        if revert.sha and change.sha.lower().startswith(revert.sha):
            return index
        if revert.title and change.title.strip() == revert.title:
            return index
    return None


def rank(changes: Sequence[Change], clues: Sequence[Clue],
         area: Sequence[str] = ()) -> list[RankedSuspect]:
    """Score every suspect (``changes`` oldest first) and order them most likely first.

    Score: for each clue, the suspect's best matching touched file adds the clue's
    weight (the same file, or for module clues a file in the module); touching a file
    next to a strong clue adds ``NEIGHBOUR`` once; touching the route's code area adds
    ``AREA`` once; a reland adds ``RELAND``; touching only documentation subtracts one.
    A change reverted by a later suspect of the same range, and that revert, cancel out:
    the change is gone at the first red commit (``REVERTED_IN_RANGE``), the revert
    scores nothing. Ties keep trunk order (oldest first): without evidence no suspect
    is more likely than another.
    """
    reverted_by: dict[int, int] = {}
    reverting: dict[int, int] = {}
    for index, change in enumerate(changes):
        revert = _reverts(change)
        if revert is None:
            continue
        target = _reverted_target(revert, changes[:index])
        if target is not None:
            reverted_by[target] = index
            reverting[index] = target
    ranked = [
        _score(index, change, clues, area, changes, reverted_by, reverting)
        for index, change in enumerate(changes)
    ]
    return sorted(ranked, key=lambda s: (-s.score, s.position))


def _score(index: int, change: Change, clues: Sequence[Clue], area: Sequence[str],
           changes: Sequence[Change], reverted_by: dict[int, int],
           reverting: dict[int, int]) -> RankedSuspect:
    if index in reverted_by:
        by = changes[reverted_by[index]].sha[:7]
        return RankedSuspect(change.sha, REVERTED_IN_RANGE,
                             (f"reverted by {by} within the range",), index)
    if index in reverting:
        target = changes[reverting[index]].sha[:7]
        return RankedSuspect(change.sha, 0,
                             (f"reverts {target} from the same range (they cancel out)",), index)
    reasons: list[tuple[int, str]] = []
    score = 0
    if _RELAND.match(change.title):
        score += RELAND
        reasons.append((RELAND, "relands a change that was reverted before"))
    files = change.files
    if files is None:
        reasons.append((0, "files not known"))
        return RankedSuspect(change.sha, score, _texts(reasons), index)
    for clue in clues:
        hit = next((f for f in files if (_in_module(f, clue.path) if clue.module
                                         else same_file(f, clue.path))), None)
        if hit is not None:
            score += clue.weight
            reasons.append((clue.weight, f"touches {hit}, {clue.why}" if not clue.module
                            else f"touches {hit} ({clue.why})"))
    strong = [c for c in clues if c.weight >= TEST_FILE and not c.module]
    near = next(((f, c) for c in strong for f in files
                 if not same_file(f, c.path) and _neighbours(f, c.path)), None)
    if near is not None:
        touched, clue = near
        score += NEIGHBOUR
        named = f"{_directory(touched)}/{clue.path.rsplit('/', 1)[-1]}"
        reasons.append((NEIGHBOUR, f"touches {_directory(touched)}/, next to {named}"))
    glob = next((g for f in files if (g := in_area(f, area)) is not None), None)
    if glob is not None:
        score += AREA
        reasons.append((AREA, f"in the route's code area ({glob})"))
    if files and all(_DOCS.search(f) for f in files):
        score += DOCS_ONLY
        reasons.append((DOCS_ONLY, "changes only documentation"))
    return RankedSuspect(change.sha, score, _texts(reasons), index)


def _texts(reasons: list[tuple[int, str]]) -> tuple[str, ...]:
    ordered = sorted(enumerate(reasons), key=lambda item: (-abs(item[1][0]), item[0]))
    return tuple(text for _, (_, text) in ordered)


def standout(ranking: Sequence[RankedSuspect]) -> RankedSuspect | None:
    """The top suspect when the evidence sets it apart (a positive score above the next)."""
    if not ranking or ranking[0].score <= 0:
        return None
    if len(ranking) > 1 and ranking[1].score >= ranking[0].score:
        return None
    return ranking[0]


def sets_apart(ranking: Sequence[RankedSuspect]) -> bool:
    """Whether to show the suspects most likely first: one of several stands out."""
    return len(ranking) > 1 and standout(ranking) is not None


GUIDES_A_BISECT = OUTER_FRAME  # the least score that names a file: area alone is a guess


def preferred(ranking: Sequence[RankedSuspect]) -> tuple[str, ...]:
    """Suspects the failure lines point at (a named file or module, not just the code area),
    most likely first: the probes a bisect may favour."""
    return tuple(s.sha for s in ranking if s.score >= GUIDES_A_BISECT)
