"""BCC's own compiler accepts the rendered C of every shipped spec and golden case."""

from __future__ import annotations

import pytest
from harness import ROOT

from runner import pipeline
from runner.kernel import bcc as kernel

SPECS = sorted((ROOT / "specs").glob("*.yaml")) + sorted(
    (ROOT / "tests" / "data" / "golden").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_rendered_c_compiles_with_bcc(path):
    compiled = pipeline.compile_spec(str(path))
    with kernel.Kernel(compiled.spec, compiled.rendered.c) as k:
        k.load()  # compiles and creates the maps; nothing is attached
        assert k.bpf is not None


def test_compile_error_names_generated_line_and_spec_element():
    compiled = pipeline.compile_spec(str(ROOT / "specs" / "hello.yaml"))
    broken = compiled.rendered.c.replace(
        "er_ev->er_id = 1;", "er_ev->er_id = 1; er_ev->no_such_field = 1;", 1)
    assert broken != compiled.rendered.c
    with kernel.Kernel(compiled.spec, broken) as k, pytest.raises(
            kernel.KernelError) as info:
        k.load()
    text = str(info.value)
    line = next(i for i, ln in enumerate(broken.splitlines(), 1) if "no_such_field" in ln)
    assert f"generated line {line}:" in text
    assert "no_such_field" in text
    assert "from spec element: probes.hello.do[0] (line 10) print" in text


LHIST_SPEC = """\
name: lhist-extremes
aggregations:
  l: {{kind: lhist, lhist: {{min: {lo}, max: {hi}, step: {step}}}, metric: {{name: l, help: h}}}}
probes:
  p:
    attach: {{raw_tracepoint: sys_enter}}
    do:
      - aggregate: {{map: l, value: arg1}}
"""


@pytest.mark.parametrize("lo,hi,step", [
    (-(2**63), 2**63 - 1, (2**64 - 1) // 255),  # the whole s64 range, 255 buckets
    (-(2**63), 0, 2**63 // 8),
    (0, 2**63 - 1, (2**63 - 1) // 7),
    (0, 1000, 1),  # the most buckets accepted
    (-(2**63), 2**63 - 1, 2**64 - 1),  # one bucket: a step beyond s64
])
def test_every_accepted_lhist_range_compiles(tmp_path, lo, hi, step):
    path = tmp_path / "lhist.yaml"
    path.write_text(LHIST_SPEC.format(lo=lo, hi=hi, step=step))
    compiled = pipeline.compile_spec(str(path))
    with kernel.Kernel(compiled.spec, compiled.rendered.c) as k:
        k.load()
        assert k.bpf is not None
