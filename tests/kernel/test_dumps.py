"""Dumps of per-CPU maps: counters add up over the CPUs (they used to be read as zero
bytes, so every per-CPU counter dumped 0). Their values are integers: the checker refuses
struct and text values (runner/check/limits.py)."""

from __future__ import annotations

import textwrap

from getppid import Generator
from harness import Run


def test_per_cpu_counters_add_up_over_the_cpus(tmp_path):
    gen = Generator(500)
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: percpu-dumps
        maps:
          slots: {{type: percpu_array, key: u32, value: u64, max_entries: 2}}
          calls: {{type: percpu_hash, key: u32, value: u64, max_entries: 4}}
        probes:
          p:
            attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
            do:
              - if: "pid == {gen.pid}"
                then:
                  - count: {{map: calls, key: pid}}
                  - count: {{map: slots, key: 1}}
        output:
          - map: slots
          - map: calls
        """))
    try:
        with Run(str(spec), "--json") as run:
            run.wait_ready()
            gen.go()
            assert run.stop() == 0, run.err
    finally:
        gen.end()
    dumps = {r["map"]: r["entries"] for r in run.json() if r["type"] == "map"}
    assert dumps["calls"] == [{"key": gen.pid, "value": 500}]
    assert dumps["slots"] == [{"key": 0, "value": 0}, {"key": 1, "value": 500}]
