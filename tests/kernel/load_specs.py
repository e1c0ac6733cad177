"""Compile and load (never attach) specs in this process, one after another, for tests that
must survive what they test: LLVM calls exit(1) on code it cannot lower, which would end a
pytest process. Run as `python tests/kernel/load_specs.py SPEC...` from the repo root; each
spec prints `loading PATH`, then `ok PATH` or `error PATH: reason`, so the caller knows
which spec a silent exit stopped at. Run with PYTHONPATH set to the checkout being tested."""

from __future__ import annotations

import os
import sys

from runner import pipeline
from runner.errors import SpecError
from runner.kernel import bcc as kernel


def load(path: str) -> str:
    try:
        compiled = pipeline.check(path)
    except SpecError as e:
        return f"refused {path}: {str(e).splitlines()[0]}"
    from runner.codegen.render import render

    c = render(compiled).c
    fns = []
    for probe in compiled.probes:
        cands = [c for c in probe.candidates if not c.function.kfunc]
        if probe.tables:
            # A prog_array takes the program type of the first program that uses it, so
            # load one option, as attaching would, and the targets for its context.
            cands = [c for c in cands if c.kind not in ("kprobe", "kretprobe")
                     or os.path.exists("/sys/kernel/tracing/kprobe_events")][:1]
            fns += [f for prog in compiled.programs for f in prog.functions
                    if cands and f.context == cands[0].function.context]
        fns += [c.function for c in cands]
    try:
        with kernel.Kernel(compiled, c) as k:
            k.load()
            for fn in fns:  # the verifier runs here: what loads, attaches
                k.bpf.load_func(fn.c_name.encode(), getattr(k.bcc.BPF, fn.prog_type))
    except Exception as e:  # KernelError, or BCC's bare Exception from load_func
        return f"error {path}: {' '.join(str(e).split())[:400]}"
    return f"ok {path}"


def main(paths: list) -> int:
    for path in paths:
        print(f"loading {path}", flush=True)
        print(load(path), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
