"""Dumps of per-CPU maps: counters add up over the CPUs (they used to be read as zero
bytes, so every per-CPU counter dumped 0). Their values are integers: the checker refuses
struct and text values (runner/check/limits.py). Periodic aggregation dumps say when they
were read and which interval they close, and a keyless count shows 0 for an interval
without events."""

from __future__ import annotations

import os
import textwrap
from datetime import datetime

from getppid import Generator
from harness import SLOW, Run


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


CALLS = 7


def test_periodic_dumps_are_numbered_and_an_interval_without_events_shows_0(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(f"""\
        name: intervals
        aggregations:
          calls: {{kind: count, every: {SLOW:g}, clear: true}}
        probes:
          p:
            attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
            do:
              - if: "pid == {os.getpid()}"
                then:
                  - aggregate: {{map: calls}}
        """))
    start = datetime.now().astimezone()
    with Run(str(spec), "--json") as run:
        run.wait_ready()

        def dumps(out):
            return [ln for ln in out if '"map": "calls"' in ln]
        # Right after a dump, a whole interval before the next: the calls fall in one.
        run.wait_output(lambda out: len(dumps(out)) == 1, 10, "the first dump")
        for _ in range(CALLS):
            os.getppid()
        run.wait_output(lambda out: len(dumps(out)) == 3, 20, "two more dumps")
        assert run.stop() == 0, run.err
    end = datetime.now().astimezone()
    records = [r for r in run.json() if r.get("map") == "calls"]
    # This process called nothing in the first interval, 7 times in the second, nothing
    # since; the dump at exit closes the partial interval after the last.
    assert [(r["interval"], r["value"]) for r in records] == \
        [(1, 0), (2, CALLS)] + [(n, 0) for n in range(3, len(records) + 1)]
    times = [datetime.fromisoformat(r["time"]) for r in records]
    assert start <= times[0] and times == sorted(times) and times[-1] <= end
    assert all(r["key"] == {} and r["kind"] == "count" for r in records)
