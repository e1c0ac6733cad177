"""Dumps of per-CPU maps: counters add up over the CPUs; struct and text values, which
used to end the run in a TypeError, are dumped too."""

from __future__ import annotations

import textwrap

from getppid import Generator
from harness import Run


def test_per_cpu_maps_of_every_value_type_are_dumped(tmp_path):
    gen = Generator(500)
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: percpu-dumps
        structs:
          st:
            - n: u64
            - name: char[8]
            - arr: u32[2]
        maps:
          structs: {{type: percpu_array, key: u32, value: st, max_entries: 2}}
          calls: {{type: percpu_hash, key: u32, value: u64, max_entries: 4}}
        probes:
          p:
            attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
            do:
              - if: "pid == {gen.pid}"
                then:
                  - count: {{map: calls, key: pid}}
        output:
          - map: structs
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
    zero = {"n": 0, "arr": [0, 0]}
    for entry in dumps["structs"]:
        assert {k: v for k, v in entry["value"].items() if k != "name"} == zero
        assert set(entry["value"]["name"]) == {""}  # one (empty) text per CPU
