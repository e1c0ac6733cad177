"""Golden files: one small spec per feature, its rendered C and Python checked in.

Two sets, both rendered and compared byte for byte:
- tests/data/golden/NAME.yaml: one feature each (an action kind, the map kinds, the attach
  options, padding, trace_pipe messages), so a change to one fragment rewrites one case;
- specs/NAME.yaml, the shipped examples, pinned in tests/data/golden/specs/.
The syscall-heavy cases are also pinned for aarch64, whose registers and numbers differ.

On a mismatch the test prints a diff and the command that regenerates the files:
    EBPF_RUN_REGEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py
Review the diff (git diff tests/data/golden) before committing it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import List, Tuple

import pytest

from runner.codegen import render

from .util import ROOT, spec_from_text

GOLDEN = ROOT / "tests" / "data" / "golden"
REGEN = "EBPF_RUN_REGEN=1 .venv/bin/python -m pytest tests/unit/test_golden.py"
ARM_CASES = ("attach_kinds", "action_tail_call", "action_choose_if", "syscall_exit")


def _cases() -> List[Tuple[Path, Path, str]]:
    """(spec, golden file stem, arch) for every case."""
    out = [(p, GOLDEN / p.stem, "x86_64") for p in sorted(GOLDEN.glob("*.yaml"))]
    out += [(GOLDEN / f"{n}.yaml", GOLDEN / f"{n}.aarch64", "aarch64") for n in ARM_CASES]
    shipped = sorted((ROOT / "specs").glob("*.yaml"))
    out += [(p, GOLDEN / "specs" / p.stem, "x86_64") for p in shipped]
    return out


CASES = _cases()


@pytest.mark.parametrize("kind", ["c", "py"])
@pytest.mark.parametrize("spec,stem,arch", CASES,
                         ids=[str(s.relative_to(GOLDEN)) for _, s, _ in CASES])
def test_golden(spec, stem, arch, kind):
    model = spec_from_text(spec.read_text(), str(spec.relative_to(ROOT)), arch)
    out = render.render(model)
    text = out.c if kind == "c" else out.python
    expected_path = stem.parent / f"{stem.name}.{kind}.golden"
    if os.environ.get("EBPF_RUN_REGEN") == "1":
        expected_path.parent.mkdir(exist_ok=True)
        expected_path.write_text(text)
    assert expected_path.exists(), f"no golden file {expected_path}; create it with: {REGEN}"
    expected = expected_path.read_text()
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            str(expected_path), "rendered"))
        pytest.fail(f"{expected_path.name} differs from the rendering:\n{diff}\n"
                    f"If the change is intended, regenerate with: {REGEN}", pytrace=False)


def test_every_feature_has_a_case():
    names = {p.stem for p in GOLDEN.glob("*.yaml")}
    assert {"action_print", "action_count_add", "action_emit", "action_tail_call",
            "action_choose_if", "map_kinds", "padding_nested", "attach_kinds",
            "trace_pipe"} <= names
    assert (GOLDEN / "specs" / "hello.c.golden").exists()
