"""Tests for gateway_core's import graph: dependencies run one way (docs/architecture.md).

Every import counts, those under ``TYPE_CHECKING`` and those inside functions too: a circle of
annotations is still a circle of modules that cannot be understood, tested or moved apart.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "gateway_core"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package and the modules of the package it imports."""
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        # ``from package import submodule`` names the package, but a submodule does not depend
        # on its own package's ``__init__`` (which runs first anyway).
        graph[name] = {
            m
            for m in found
            if m in files
            and m != name
            and not (files[m].name == "__init__.py" and name.startswith(m + "."))
        }
    return graph


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "gateway_core.proxy.exchange" in graph["gateway_core.proxy.downstream"]
    # A TYPE_CHECKING import counts.
    assert "gateway_core.proxy.interfaces" in graph["gateway_core.proxy.http1_wire"]


def test_no_import_circle() -> None:
    try:
        graphlib.TopologicalSorter(import_graph()).prepare()
    except graphlib.CycleError as err:
        pytest.fail("import circle: " + " -> ".join(err.args[1]))


@pytest.mark.parametrize(
    ("lower", "upper"),
    [
        ("gateway_core.proxy.", "gateway_core.server."),
        ("gateway_core.upstream.", "gateway_core.proxy."),
        ("gateway_core.upstream.", "gateway_core.server."),
    ],
)
def test_lower_layers_do_not_import_upper_ones(lower: str, upper: str) -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in import_graph().items()
        if module.startswith(lower)
        for target in targets
        if target.startswith(upper)
    )
    assert upward == []
