"""The import rules of the package, checked over its source with `ast` so they stay true:
every import (module level or inside a function) points down the pipeline's order below,
and no modules import each other in a circle."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set

from .util import ROOT

# Lowest first: a module may import from its own layer and the layers before it.
# model is the data between the stages; support, symbols and kinds serve every stage; then the
# stages in the order data moves through them; the command line last.
LAYERS = ("errors", "model", "support", "symbols", "kinds", "spec", "check", "codegen", "pipeline",
          "kernel", "output", "runtime", "testing", "cli", "__main__")


def _modules() -> Dict[str, Path]:
    out = {}
    for p in (ROOT / "runner").rglob("*.py"):
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(name: str, path: Path, known: Set[str]) -> Set[str]:
    """The package's modules that `name` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def _graph() -> Dict[str, Set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else module


def test_every_top_level_name_has_a_layer():
    assert {_layer(m) for m in _graph() if m != "runner"} <= set(LAYERS)


def test_no_import_runs_against_the_pipeline():
    upward = sorted(f"{a} -> {b}" for a, bs in _graph().items() for b in bs
                    if a != "runner" and b != "runner"
                    and LAYERS.index(_layer(b)) > LAYERS.index(_layer(a)))
    assert upward == []


def _circles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_circle_of_imports():
    assert _circles(_graph()) == []


def test_the_circle_finder_finds_a_circle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [["a", "b", "c"]]
