"""The README's layers, checked: imports inside ``bot`` run one way, top to bottom.

Each top-level unit of ``bot`` (a package such as ``bot.slack``, or a module such as
``bot.config``) has a layer; a unit may import units of a lower layer, and units of its
own layer as long as the imports between units form no loop, except ingest and slack,
which stand side by side and never import each other. Imports under
``if TYPE_CHECKING:`` are annotations, not dependencies. The one exception the README
names: bisect and retry may use ``bot.slack.mrkdwn``, the pure escaping of their text.
"""

from __future__ import annotations

import ast
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

# README "Imports run one way": the higher the rank, the higher the layer
RANKS: dict[str, int] = {
    "runtime": 6, "commands": 6, "__main__": 6,
    "web": 5, "lanes": 5, "health_checks": 5,
    "bisect": 4, "retry": 4,
    "ingest": 3, "slack": 3,
    "github": 2, "config": 2, "health": 2, "schedule": 2,
    "store": 1,
    "domain": 0,
}
ALLOWED = {("bisect", "bot.slack.mrkdwn"), ("retry", "bot.slack.mrkdwn")}
APART = {frozenset({"ingest", "slack"})}


def unit_of(path: Path) -> str:
    rel = path.relative_to(BOT)
    return rel.parts[0].removesuffix(".py")


def imported(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every ``bot`` import outside ``TYPE_CHECKING`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(inner) for part in node.body for inner in ast.walk(part))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[:len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return [(line, name) for line, name in found if name == "bot" or name.startswith("bot.")]


def violations() -> list[str]:
    out: list[str] = []
    edges: dict[str, set[str]] = {}
    for path in sorted(BOT.rglob("*.py")):
        source_unit = unit_of(path)
        assert source_unit in RANKS or source_unit == "__init__", (
            f"{path}: a new unit of bot; give it a layer here and in the README")
        rel = path.relative_to(BOT.parent).with_suffix("")
        is_package = rel.name == "__init__"
        module = ".".join(rel.parts[:-1] if is_package else rel.parts)
        for line, name in imported(ast.parse(path.read_text()), module, is_package):
            parts = name.split(".")
            if len(parts) < 2:
                continue
            target = parts[1]
            if source_unit == "__init__" or target == source_unit:
                continue
            if (source_unit, ".".join(parts[:3])) in ALLOWED:
                continue
            edges.setdefault(source_unit, set()).add(target)
            same = RANKS.get(target, -1) == RANKS[source_unit]
            if RANKS.get(target, -1) > RANKS[source_unit] or (
                    same and frozenset({source_unit, target}) in APART):
                out.append(f"{path.relative_to(BOT.parent)}:{line}: {source_unit} "
                           f"imports {name} (layer {RANKS.get(target)} above or beside "
                           f"{RANKS[source_unit]})")
    return out + [f"import loop: {' -> '.join(loop)}" for loop in loops(edges)]


def loops(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every unit that can reach itself, with one path back (depth-first search)."""
    found: list[list[str]] = []

    def walk(start: str, node: str, path: list[str], seen: set[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                found.append([*path, nxt])
            elif nxt not in seen:
                seen.add(nxt)
                walk(start, nxt, [*path, nxt], seen)

    for unit in sorted(edges):
        before = len(found)
        walk(unit, unit, [unit], {unit})
        del found[before + 1:]  # one loop per unit is enough to name it
    return found


def test_imports_run_one_way() -> None:
    assert violations() == []


def test_the_check_sees_a_backward_import_and_a_loop() -> None:
    """The checker itself: a store module importing the Slack side is caught."""
    tree = ast.parse("from bot.slack import render\nif TYPE_CHECKING:\n    import bot.web\n")
    names = [name for _, name in imported(tree, "bot.store.x", False)]
    assert names == ["bot.slack"]
    relative = ast.parse("from ..slack import render\nfrom . import alerts\n")
    assert [n for _, n in imported(relative, "bot.store.x", False)] == ["bot.slack",
                                                                         "bot.store"]
    assert loops({"web": {"lanes"}, "lanes": {"web"}, "store": {"domain"}}) == [
        ["lanes", "web", "lanes"], ["web", "lanes", "web"]]
