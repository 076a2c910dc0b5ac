"""The house itself: services/ imports only down the flow, the core imports no shell, no cycles.

services/__init__.py draws the rooms; these tests read every module's imports (statically, with
``ast``, so an import inside a function counts too) and hold the arrows to that drawing.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("events", "projections", "services")

ROOMS_MAY_IMPORT: dict[str, set[str]] = {
    "settings": set(),
    "faults": set(),
    "store": set(),
    "projector": {"store", "faults"},
    "audit": {"store"},
    "realtime": {"store", "faults"},
    "reader": set(),
    "http": {"store", "audit", "reader", "settings", "faults"},
    "cli": {"settings", "reader", "run", "demo"},
    "run": {"store", "projector", "http", "realtime", "settings"},
    "demo": {"store", "run", "settings", "reader"},
}
"""Which rooms each room may import (besides itself and the core): down the flow, never back.

``faults`` (the fault points tests arm) is, like ``settings``, a module every room may reach.

The reader page's routes live with the API (``http/reader.py``), so ``reader/`` is rendering
alone and imports no room. ``cli`` starts the processes of ``run``
and ``demo``, and renders story text with the reader's plain-text conversion.
"""


def modules() -> dict[str, Path]:
    """Every module of the core and the shells, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules one file imports (``from a import b`` counts ``a.b`` when it is one)."""
    tree = ast.parse(path.read_text(), str(path))
    named: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            named.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named.add(node.module)
            named.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in named if name in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def test_the_core_never_imports_a_shell() -> None:
    """events/ and projections/ import nothing from services/ (the core is pure)."""
    offenders = {
        (name, target)
        for name, targets in graph().items()
        if name.split(".")[0] in ("events", "projections")
        for target in targets
        if target.startswith("services")
    }
    assert offenders == set()


def test_every_room_imports_only_down_the_flow() -> None:
    """A room imports only the rooms ``ROOMS_MAY_IMPORT`` allows it (and the core): no circle."""
    offenders = set()
    for name, targets in graph().items():
        here = room(name)
        if here is None or here not in ROOMS_MAY_IMPORT:
            continue
        for target in targets:
            there = room(target)
            if there is not None and there != here and there not in ROOMS_MAY_IMPORT[here]:
                offenders.add((name, target))
    assert offenders == set()


def test_every_module_lives_in_a_room() -> None:
    """Nothing in services/ sits outside the rooms but settings, faults, the package and ``__main__``."""
    loose = {
        name
        for name in modules()
        if name.startswith("services.") and room(name) not in ROOMS_MAY_IMPORT
    }
    assert loose == {"services.__main__"}


def test_no_module_imports_itself_round_a_cycle() -> None:
    """The module import graph has no cycle, however long."""
    edges = graph()
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append([*path[path.index(name) :], name])
            return
        if name in done:
            return
        for target in sorted(edges.get(name, ())):
            if target != name and not name.startswith(target + "."):  # a package's own parent
                visit(target, [*path, name])
        done.add(name)

    for name in sorted(edges):
        visit(name, [])
    assert cycles == []


def test_the_rooms_themselves_draw_no_circle() -> None:
    """Room by room, the allowed arrows never lead back to where they started."""

    def reachable(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for there in ROOMS_MAY_IMPORT.get(todo.pop(), set()):
                if there not in seen:
                    seen.add(there)
                    todo.append(there)
        return seen

    assert [room for room in ROOMS_MAY_IMPORT if room in reachable(room)] == []
