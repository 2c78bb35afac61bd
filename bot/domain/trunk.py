"""Trunk order from the push chain: where commits that wait for a neighbour are placed.

Each push names its parent (``before``) and lists its commits oldest first, so every
commit it brings knows its parent. GitHub redelivers pushes in any order, so a push whose
parent is not placed yet waits; it is placed right after its parent once that is placed,
or right before a placed commit that names it as parent. Arrival order never decides.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placement:
    """Place ``sha`` right after ``after`` or right before ``before`` (both placed by then)."""

    sha: str
    after: str | None = None
    before: str | None = None


def chain_placements(
    waiting: Mapping[str, str | None],
    placed_parents: frozenset[str] | set[str],
    placed_children: Mapping[str, str],
) -> list[Placement]:
    """The waiting commits that can be placed now, in an order that keeps the chain.

    ``waiting`` maps each waiting commit to its parent (None when unknown).
    ``placed_parents`` are the parents among them that are already placed.
    ``placed_children`` maps a waiting commit to a placed commit whose parent it is.

    A commit goes after its parent when the parent is placed (or placed earlier in the
    returned list), else before its child when the child is; what is left waits. Each
    placement names a neighbour placed before it, so applying them in order never
    needs a commit that is not there yet.
    """
    children: dict[str, list[str]] = {}
    for sha, parent in waiting.items():
        if parent is not None:
            children.setdefault(parent, []).append(sha)
    done: set[str] = set()
    out: list[Placement] = []
    frontier = sorted(waiting)
    while frontier:
        progressed: list[str] = []
        for sha in frontier:
            if sha in done:
                continue
            parent = waiting[sha]
            if parent is not None and (parent in placed_parents or parent in done):
                out.append(Placement(sha, after=parent))
            elif sha in placed_children:
                out.append(Placement(sha, before=placed_children[sha]))
            elif (child := _done_child(children.get(sha, ()), done)) is not None:
                out.append(Placement(sha, before=child))
            else:
                continue
            done.add(sha)
            progressed.append(sha)
        # a placed commit unlocks its waiting children and its waiting parent
        frontier = sorted({c for sha in progressed for c in children.get(sha, ())}
                          | {p for sha in progressed if (p := waiting[sha]) in waiting}
                          - done)
    return out


def _done_child(candidates: Iterable[str], done: set[str]) -> str | None:
    for child in sorted(candidates):
        if child in done:
            return child
    return None


def chains(waiting: Mapping[str, str | None]) -> list[list[str]]:
    """The waiting commits as chains, each oldest first, for placing them without an anchor.

    A chain starts at a commit whose parent is not waiting itself and follows children;
    a commit with several waiting children (a rewritten branch) continues with the first
    by sha and starts a new chain for each other one.
    """
    children: dict[str, list[str]] = {}
    for sha, parent in waiting.items():
        if parent is not None and parent in waiting:
            children.setdefault(parent, []).append(sha)
    roots = sorted(sha for sha, parent in waiting.items()
                   if parent is None or parent not in waiting)
    out: list[list[str]] = []
    seen: set[str] = set()
    stack = list(reversed(roots))
    while stack:
        chain: list[str] = []
        sha: str | None = stack.pop()
        while sha is not None and sha not in seen:
            seen.add(sha)
            chain.append(sha)
            kids = sorted(children.get(sha, ()))
            stack.extend(reversed(kids[1:]))
            sha = kids[0] if kids else None
        if chain:
            out.append(chain)
    # a cycle (a corrupt chain) has no root: keep its commits rather than lose them
    rest = sorted(set(waiting) - seen)
    if rest:
        out.append(rest)
    return out
