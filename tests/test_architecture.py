"""The package's shape: layers that depend one way, no import cycles, small documented modules.

The layer order lives in pyproject.toml (``[tool.importlinter]``); this file
runs import-linter on it and adds what import-linter does not check: no
cycles at all (function-level imports included) and modules that say what
they are for.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "textclf"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_layers_contract_holds():
    """`lint-imports`: a lower layer never imports a higher one (cli → pipeline → ... → core)."""
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe)], capture_output=True, text=True, cwd=PACKAGE.parent, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        out.append(sorted(component))
    return out


def test_no_import_cycles_even_through_function_level_imports():
    import grimp

    graph = grimp.build_graph("textclf", cache_dir=None)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert _cycles(edges) == []


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_module_says_what_it_is_for(path):
    # Modules are split by concept; their size is a prompt to look in review, not a rule (a line cap once
    # split one concept in two: a model folder's reader from its checks).
    source = path.read_text(encoding="utf-8")
    if path.name != "__main__.py":
        assert ast.get_docstring(ast.parse(source)), f"{path}: add a module docstring saying what it is for"
