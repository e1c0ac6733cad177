"""The house rules the issue set for the package's shape, checked so they stay true:
small modules (at most 400 lines) and classes (at most 250 lines). Function complexity is
ruff's C901 at 12 (pyproject.toml)."""

from __future__ import annotations

import ast

from .util import ROOT

PACKAGE = ROOT / "runner"


def test_no_module_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}


def test_no_class_over_250_lines():
    long = {}
    for p in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > 250:
                    long[f"{p.relative_to(ROOT)}:{node.name}"] = size
    assert long == {}
