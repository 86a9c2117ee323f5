"""The shape of the code: mclx's modules import each other without cycles.

Imports inside functions count too: a lazy import hides a cycle from Python but not from the
reader. A submodule importing from its own package (``from mclx.probe import metrics``, or
``from mclx import __version__``) is not an edge: that is how a package's parts reach each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "mclx"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                own_package = name.startswith(target + ".")
                if target in modules and target != name and not own_package:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_imports_and_finds_a_planted_cycle() -> None:
    graph = import_graph()
    assert "mclx.embed.command" in graph["mclx.cli"]  # imported inside the embed command
    assert "mclx.models.checkpoint" in graph["mclx.models.registry"]
    planted = {k: set(v) for k, v in graph.items()}
    planted["mclx.models.checkpoint"].add("mclx.models.registry")
    assert ["mclx.models.checkpoint", "mclx.models.registry"] in cycles(planted)


def test_no_import_cycles_between_mclx_modules() -> None:
    assert cycles(import_graph()) == []
