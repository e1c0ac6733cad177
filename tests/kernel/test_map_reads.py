"""runner/kernel/map_reads.py against BCC's own reading of the same maps: the batched walk,
the count and the lookups give what map_items gives, for per-CPU counts, hist and lhist."""

from __future__ import annotations

import subprocess
import sys

from test_aggregations import write

from runner import pipeline
from runner.kernel import bcc as kernel
from runner.kernel.map_reads import BATCH, count_entries, items_batched, lookup_many

KEYS = 3 * BATCH + 17  # batches full and not
READS = 300
SPEC = """\
name: map-reads
aggregations:
  big: {{kind: count, key: {{n: s64}}, max_entries: 20000}}
  sizes: {{kind: hist, unit: bytes, key: {{cpu: u32}}}}
  lsizes: {{kind: lhist, lhist: {{min: 0, max: 300, step: 10}}}}
probes:
  fill:
    attach: {{tracepoint: "syscalls:sys_enter_getpgid"}}
    do:
      - if: "pid == {pid}"
        then:
          - aggregate: {{map: big, key: {{n: args.pid}}}}
  rd:
    attach: {{tracepoint: "syscalls:sys_exit_read"}}
    do:
      - if: "pid == {pid}"
        then:
          - aggregate: {{map: sizes, key: {{cpu: cpu}}, value: args.ret}}
          - aggregate: {{map: lsizes, value: args.ret}}
"""
WORK = ("import ctypes, os, sys; sys.stdin.readline(); g = ctypes.CDLL(None).getpgid\n"
        f"for i in range({KEYS}): g(10_000_000 + i)\n"
        "fd = os.open('/dev/zero', os.O_RDONLY)\n"
        f"for i in range({READS}): os.read(fd, i)")


def test_batched_reads_equal_bccs(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WORK], stdin=subprocess.PIPE)
    try:
        compiled = pipeline.compile_spec(write(tmp_path, SPEC.format(pid=proc.pid)))
        with kernel.Kernel(compiled.spec, compiled.rendered.c) as k:
            k.load()
            for probe in compiled.spec.probes:
                assert k.attach(probe, lambda: False).method is not None
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
            assert proc.wait(60) == 0
            k.detach_all()
            got = {}
            for agg in compiled.spec.aggregations:
                walked = sorted(k.maps.map_items(agg.map))
                assert sorted(items_batched(k.bpf, agg.map)) == walked
                assert count_entries(k.bpf, agg.map) == len(walked)
                some = [kb for kb, _ in walked[:5]] + [b"\xff" * len(walked[0][0])]
                assert lookup_many(k.bpf, agg.map, some) == dict(walked[:5])
                got[agg.name] = len(walked)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    # Every getpgid argument a key; read() sizes 0..299: the 30 lhist buckets from 0 to 300
    # (no metric, so no sum row); log2 buckets 0, 1, [2, 4) ... [256, 512) per CPU it ran on.
    assert got["big"] == KEYS and got["lsizes"] == 30
    assert 10 <= got["sizes"] <= 20
