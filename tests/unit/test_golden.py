"""Golden files: one small spec per feature, its rendered C and Python checked in.

On a mismatch the test prints a diff and the command that regenerates the files:
    EBPF_RUN_REGEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py
Review the diff (git diff tests/data/golden) before committing it.
"""

from __future__ import annotations

import difflib
import os

import pytest

from runner.codegen import render

from .util import ROOT, spec_from_text

GOLDEN = ROOT / "tests" / "data" / "golden"
CASES = sorted(p.stem for p in GOLDEN.glob("*.yaml"))
REGEN = "EBPF_RUN_REGEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py"


def _rendered(name):
    path = GOLDEN / f"{name}.yaml"
    spec = spec_from_text(path.read_text(), f"tests/data/golden/{name}.yaml", "x86_64")
    return render.render(spec)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("kind", ["c", "py"])
def test_golden(name, kind):
    out = _rendered(name)
    text = out.c if kind == "c" else out.python
    expected_path = GOLDEN / f"{name}.{kind}.golden"
    if os.environ.get("EBPF_RUN_REGEN") == "1":
        expected_path.write_text(text)
    assert expected_path.exists(), f"no golden file {expected_path}; create it with: {REGEN}"
    expected = expected_path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            str(expected_path), "rendered"))
        pytest.fail(f"{expected_path.name} differs from the rendering:\n{diff}\n"
                    f"If the change is intended, regenerate with: {REGEN}", pytrace=False)


def test_every_feature_has_a_case():
    assert {"action_print", "action_count_add", "action_emit", "action_tail_call",
            "action_choose_if", "map_kinds", "padding_nested", "attach_kinds",
            "trace_pipe"} <= set(CASES)
