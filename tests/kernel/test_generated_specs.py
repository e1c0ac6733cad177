"""The systemic test of issue 16: every generated spec that `check` accepts compiles and loads
in the kernel (loading without attaching runs LLVM and the verifier; what loads, attaches).
A spec that cannot be made loadable must be refused at check time, with a location.

EBPF_RUN_GENERATED_SPECS sets how many accepted specs to load (default 40, or 6 under
EBPF_RUN_VM=1, where a compile takes about 10 s); EBPF_RUN_GENERATED_SEED picks the run
(default 16). A failure names the seed and index: tests/specgen.py's generate(seed, index)
gives the same spec again.
"""

from __future__ import annotations

import os

from specgen import generate
from test_spec_loads import load_specs

from runner.errors import SpecError
from runner.pipeline import check

VM = os.environ.get("EBPF_RUN_VM") == "1"
COUNT = int(os.environ.get("EBPF_RUN_GENERATED_SPECS", "6" if VM else "40"))
SEED = int(os.environ.get("EBPF_RUN_GENERATED_SEED", "16"))


def test_every_generated_spec_that_validates_loads(tmp_path):
    accepted = {}
    index = 0
    while len(accepted) < COUNT and index < COUNT * 20:
        path = tmp_path / f"seed{SEED}-spec{index}.yaml"
        path.write_text(generate(SEED, index))
        index += 1
        try:
            check(str(path))
        except SpecError:
            continue  # refused with located messages: tests/unit/test_generated_specs.py
        accepted[str(path)] = path.read_text()
    assert len(accepted) == COUNT, f"only {len(accepted)} of {index} generated specs validate"
    lines = load_specs(list(accepted), timeout=max(600, COUNT * 30))
    failed = [ln for ln in lines if not ln.startswith("ok ")]
    assert not failed, "\n".join(
        f"{ln}\n{accepted[ln.split()[1].rstrip(':')]}" for ln in failed)
