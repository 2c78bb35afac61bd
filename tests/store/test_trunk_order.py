"""Trunk order from the push chain: pushes redelivered in any order give the true order."""

from __future__ import annotations

import os
import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.model import Commit
from bot.domain.trunk import Placement, chain_placements, chains
from bot.store import history
from bot.store.db import Store

REPO, BRANCH = "pytorch/pytorch", "main"
NOW = datetime(2025, 12, 9, tzinfo=UTC)


def order(store: Store) -> list[str]:
    return [row[0] for row in store.db.execute(
        "SELECT sha FROM commits WHERE repo = ? AND branch = ? ORDER BY position",
        [REPO, BRANCH])]


def waiting(store: Store) -> list[str]:
    return [row[0] for row in store.db.execute("SELECT sha FROM waiting_commits ORDER BY sha")]


def commit(i: int) -> Commit:
    return Commit(f"{i + 1:040x}", time=NOW + timedelta(minutes=i))


def push(store: Store, commits: list[Commit], before: str) -> list[str]:
    with store.transaction() as db:
        return history.place_commits(db, REPO, BRANCH, commits, after=before, now=NOW)


# --- the pure rule -------------------------------------------------------------------------


def test_a_commit_goes_after_its_placed_parent_then_its_children_follow() -> None:
    plan = chain_placements({"b": "a", "c": "b"}, {"a"}, {})
    assert plan == [Placement("b", after="a"), Placement("c", after="b")]


def test_a_commit_goes_before_the_placed_commit_naming_it_as_parent() -> None:
    plan = chain_placements({"y": "x", "x": "w"}, set(), {"y": "z"})
    assert plan == [Placement("y", before="z"), Placement("x", before="y")]


def test_commits_without_a_placed_neighbour_wait() -> None:
    assert chain_placements({"q": "p", "r": "q"}, set(), {}) == []


def test_chains_follow_parents_oldest_first() -> None:
    assert chains({"b": "a", "c": "b", "y": "x"}) == [["b", "c"], ["y"]]


# --- through the store --------------------------------------------------------------------


def test_pushes_redelivered_newest_first_are_placed_in_trunk_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.migrate()
    c = [commit(i) for i in range(13)]
    push(store, c[0:10], "0" * 39 + "f")  # the first push of the branch starts history
    assert push(store, [c[12]], c[11].sha) == []  # its parent is not placed: it waits
    assert push(store, [c[11]], c[10].sha) == []
    assert waiting(store) == sorted([c[11].sha, c[12].sha])
    assert push(store, [c[10]], c[9].sha) == [c[10].sha, c[11].sha, c[12].sha]
    assert order(store) == [x.sha for x in c] and waiting(store) == []
    store.close()


def test_a_push_whose_child_arrived_first_goes_before_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.migrate()
    c = [commit(i) for i in range(6)]
    push(store, c[4:6], c[3].sha)  # the first delivery: starts history
    push(store, c[1:2], c[0].sha)  # c0 unknown, and c1 is nobody's parent yet: waits
    push(store, c[3:4], c[2].sha)  # c4 names c3 as parent: placed before it
    push(store, c[2:3], c[1].sha)  # now the whole chain connects
    push(store, c[0:1], "0" * 40)
    assert order(store) == [x.sha for x in c] and waiting(store) == []
    store.close()


def test_a_listing_places_waiting_commits_it_names(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.migrate()
    c = [commit(i) for i in range(6)]
    push(store, c[0:2], "0" * 40)
    push(store, c[4:6], c[3].sha)  # waits for c3
    with store.transaction() as db:  # HUD or the commits API: c1..c4 in order
        placed = history.place_commits(db, REPO, BRANCH, c[1:5], now=NOW)
    assert sorted(placed) == sorted(x.sha for x in c[2:6])
    assert order(store) == [x.sha for x in c] and waiting(store) == []
    store.close()


def test_a_chain_that_never_connects_is_placed_at_the_head_after_waiting(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "t.db")
    store.migrate()
    c = [commit(i) for i in range(6)]
    push(store, c[0:2], "0" * 40)
    push(store, c[4:6], c[3].sha)  # c2 and c3 were never delivered
    with store.transaction() as db:
        assert history.place_stale_waiting(db, REPO, BRANCH, NOW) == []  # not waited yet
        assert history.place_stale_waiting(db, REPO, BRANCH, NOW + timedelta(minutes=1)) == [
            c[4].sha, c[5].sha]
    push(store, c[3:4], c[2].sha)  # a late redelivery still lands before its child
    assert order(store) == [c[0].sha, c[1].sha, c[3].sha, c[4].sha, c[5].sha]
    store.close()


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]], int]:
    """A trunk of n commits cut into pushes, a few HUD-like listings, and a shuffle seed."""
    n = draw(st.integers(1, 30))
    cuts = sorted(draw(st.sets(st.integers(1, n - 1), max_size=n - 1))) if n > 1 else []
    bounds = [0, *cuts, n]
    pushes = list(zip(bounds, bounds[1:], strict=False))
    listings = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, 8)), max_size=2))
    return n, pushes, [(a, min(n, a + k)) for a, k in listings], draw(st.integers(0, 2**16))


@settings(max_examples=int(os.environ.get("TRUNK_EXAMPLES", "150")), deadline=None,
          derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_any_redelivery_order_gives_the_true_trunk_order(
        case: tuple[int, list[tuple[int, int]], list[tuple[int, int]], int]) -> None:
    n, pushes, listings, seed = case
    c = [commit(i) for i in range(n)]
    items: list[tuple[str, int, int]] = [("push", a, b) for a, b in pushes]
    items += [("listing", a, b) for a, b in listings]
    random.Random(seed).shuffle(items)
    # every delivery is redelivered once more, later, as GitHub may
    items += random.Random(seed + 1).sample(items, len(items))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "t.db")
        store.migrate()
        try:
            for kind, a, b in items:
                with store.transaction() as db:
                    if kind == "push":
                        before = c[a - 1].sha if a else "0" * 40
                        history.place_commits(db, REPO, BRANCH, c[a:b], after=before, now=NOW)
                    else:
                        history.place_commits(db, REPO, BRANCH, c[a:b], now=NOW)
            assert waiting(store) == []
            assert order(store) == [x.sha for x in c]
        finally:
            store.close()
