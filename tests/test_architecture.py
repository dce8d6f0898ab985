"""The package's shape (docs/design.md): imports run one way, with no cycle (imports inside functions
included), and no module is too long to read. Parses the sources with ``ast``; imports nothing."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "medseg3d"
MAX_LINES = 600

# Modules still over MAX_LINES that are not yet split. Remove a name when its split is merged.
TOO_LONG_FOR_NOW: set[str] = set()
# Import cycles that exist on main. Remove one when it is broken.
CYCLES_FOR_NOW: list[set[str]] = []


@functools.cache
def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (a package is its ``__init__``)."""
    modules = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its body (functions included; annotation-only
    ``if TYPE_CHECKING:`` imports left out: they never run). Importing ``a.b.c`` from outside ``a.b`` also
    runs ``a.b``'s ``__init__``, so that counts as importing ``a.b`` too."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    annotation_only = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _type_checking_only(node)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    targets: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in annotation_only:
            continue
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                targets.add(submodule if submodule in modules else source)
    found = set()
    for target in targets:
        if target not in modules or target == name:
            continue
        found.add(target)
        parts = target.split(".")
        # parent packages below the root (the root's __init__ imports nothing eagerly)
        for k in range(2, len(parts)):
            parent = ".".join(parts[:k])
            if not (name == parent or name.startswith(parent + ".")):
                found.add(parent)
    return found


@functools.cache
def import_graph() -> dict[str, set[str]]:
    modules = module_files()
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(component)
    return cycles


def test_the_cycle_finder_finds_known_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": set()}
    assert find_cycles(graph) == [{"a", "b", "c"}]
    assert find_cycles({"x": {"y"}, "y": set()}) == []


def test_relative_function_level_and_package_imports_are_edges(tmp_path):
    names = [
        "medseg3d.experiments",
        "medseg3d.experiments.plan",
        "medseg3d.experiments.timing",
        "medseg3d.experiments.runner",
        "medseg3d.train",
        "medseg3d.train.step",
        "medseg3d.io",
    ]
    modules = {name: tmp_path / f"{name}.py" for name in names}  # only the names matter here
    source = modules["medseg3d.experiments.plan"]
    source.write_text(
        "from typing import TYPE_CHECKING\nfrom . import timing\nfrom ..io import read_volume\n"
        "def f():\n    from ..train.step import training_step\n"
        "if TYPE_CHECKING:\n    from .runner import Task\n",
        encoding="utf-8",
    )
    assert imported_modules("medseg3d.experiments.plan", source, modules) == {
        "medseg3d.experiments.timing",
        "medseg3d.io",
        "medseg3d.train.step",
        "medseg3d.train",
    }


def test_no_import_cycle():
    cycles = [c for c in find_cycles(import_graph()) if c not in CYCLES_FOR_NOW]
    assert not cycles, f"import cycles: {[sorted(c) for c in cycles]}"


def test_the_known_cycles_still_exist():
    """A cycle that has been broken comes off the list, so it cannot come back unnoticed."""
    cycles = find_cycles(import_graph())
    for cycle in CYCLES_FOR_NOW:
        assert any(cycle <= c for c in cycles), f"{sorted(cycle)} is no cycle now: take it off CYCLES_FOR_NOW"


@pytest.mark.parametrize("name", sorted(module_files()))
def test_module_is_short_enough_to_read(name):
    lines = len(module_files()[name].read_text(encoding="utf-8").splitlines())
    if name in TOO_LONG_FOR_NOW:
        assert lines > MAX_LINES, f"{name} has {lines} lines now: remove it from TOO_LONG_FOR_NOW"
    else:
        assert lines <= MAX_LINES, f"{name} has {lines} lines (at most {MAX_LINES}): split it by concept"
