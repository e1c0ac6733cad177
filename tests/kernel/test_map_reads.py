"""runner/kernel/map_reads.py against BCC's own reading of the same maps: the batched walk,
the count and the lookups give what map_items gives, for per-CPU counts, hist and lhist."""

from __future__ import annotations

import subprocess
import sys

import pytest
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


HIST_KEYS = 1_000_000
HIST_SPEC = """\
name: hist-scrape
aggregations:
  sizes:
    kind: hist
    unit: bytes
    key: {{n: s64}}
    max_entries: 2100000
    metric: {{name: sizes_bytes, help: "getpgid arguments by argument.", max_label_sets: 10000}}
probes:
  fill:
    attach: {{tracepoint: "syscalls:sys_enter_getpgid"}}
    do:
      - if: "pid == {pid}"
        then:
          - aggregate: {{map: sizes, key: {{n: args.pid}}, value: args.pid}}
"""
# Every argument a key with one value, itself: 2,000,000 entries (a bucket and a sum each).
HIST_WORK = ("import ctypes, sys; sys.stdin.readline(); g = ctypes.CDLL(None).getpgid\n"
             f"for i in range({HIST_KEYS}): g(1 + i)")


# The scale is user space's (how many keys a scrape reads); the kernel's batch and lookup
# reads are the test above's on both kernels. 129 s of the 6.1 VM's 50 minutes: host only.
@pytest.mark.host_only
def test_a_histogram_scrape_of_a_million_keys_reads_what_a_walk_does(tmp_path):
    """A histogram's metric walked every (key, bucket) entry on every scrape. Now, once it
    has its 10,000 label sets (its spec asks for that many), it looks up their buckets:
    the values are a full walk's (each key's one value in its bucket and its sum), and
    the time of each is printed."""
    import time

    from runner.runtime.decode import load_types
    from runner.runtime.metrics import SpecMetrics

    proc = subprocess.Popen([sys.executable, "-c", HIST_WORK], stdin=subprocess.PIPE)
    try:
        compiled = pipeline.compile_spec(write(tmp_path, HIST_SPEC.format(pid=proc.pid)))
        spec = compiled.spec
        types = load_types(compiled.rendered.python, spec)
        with kernel.Kernel(spec, compiled.rendered.c) as k:
            k.load()
            assert k.attach(spec.probes[0], lambda: False).method is not None
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            proc.stdin.close()
            assert proc.wait(120) == 0
            k.detach_all()
            clock = [0.0]
            bounded = SpecMetrics(spec, types, lambda m: items_batched(k.bpf, m),
                                  lambda m, keys: lookup_many(k.bpf, m, keys),
                                  lambda m: count_entries(k.bpf, m), lambda: clock[0])
            took = []
            for _ in range(3):
                start = time.monotonic()
                (snap,) = bounded.read()
                took.append(time.monotonic() - start)
                clock[0] += 5  # a new read, the count kept (30 s)
            start = time.monotonic()
            walked = dict(sorted(k.maps.map_items(spec.aggregations[0].map)))
            walk_took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    print(f"\nhistogram of {HIST_KEYS} keys: scrapes {', '.join(f'{t:.2f}' for t in took)} s "
          f"(the first walks and counts); a walk of every entry {walk_took:.2f} s")
    assert len(walked) == 2 * HIST_KEYS
    assert len(snap.samples) == 10_000 and snap.unread == 2 * (HIST_KEYS - 10_000)
    reader = bounded.readers["sizes"]
    exported = {x.labels: x.histogram for x in snap.samples}
    idents = {int(n).to_bytes(8, sys.byteorder, signed=True) for (n,) in exported}
    theirs = reader.read([(kb, v) for kb, v in walked.items() if kb[:8] in idents])
    assert {reader.metric_label(key): h for key, h in theirs.items()} == exported
    for (n, ), hist in exported.items():
        assert (hist.total, hist.sum, hist.counts[hist.layout.index(int(n))]) == (1, int(n), 1)
