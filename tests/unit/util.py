from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Tuple

from runner.check import build
from runner.model.spec import Spec
from runner.spec import loader, schema

ROOT = Path(__file__).resolve().parents[2]


def spec_from_text(text: str, file: str = "test.yaml", arch: str = "x86_64") -> Spec:
    doc = loader.load_text(text, file)
    try:
        schema.check(doc)
    except schema.UnknownActions as e:  # the checker reports the rest with them
        return build.build(doc, arch, e.diagnostics)
    return build.build(doc, arch)


def tree_paths(node: Any, path: Tuple[Any, ...] = ()) -> Iterator[Tuple[Any, ...]]:
    """Every place in a loaded document (keys and indexes from the top), the top first."""
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from tree_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from tree_paths(v, (*path, i))


def tree_get(tree: Any, path: Tuple[Any, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def python_says(code: str) -> str:
    """What `python -c code` prints, run apart from pytest in the repository's root."""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return done.stdout.strip()
