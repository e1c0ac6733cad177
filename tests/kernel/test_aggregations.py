"""Aggregations against the real kernel: counts by decoded syscall, a latency histogram
in ms, with bpftrace as the oracle for the counts."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import textwrap
import time

import pytest
from getppid import Generator
from harness import SLOW, Run

N = 5000

COUNT_SPEC = """\
name: count-by-syscall
aggregations:
  calls:
    kind: count
    key: {{syscall: s64}}
    decode: {{syscall: syscall}}
    metric: {{name: calls_total, help: "Syscalls of the test process."}}
probes:
  enter:
    attach: {{raw_tracepoint: sys_enter}}
    do:
      - if: "pid == {pid}"
        then:
          - aggregate: {{map: calls, key: {{syscall: syscall_nr}}}}
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def count_records(run: Run, name: str = "calls") -> dict:
    return {r["key"]["syscall_name"]: r for r in run.json()
            if r.get("type") == "map" and r.get("map") == name}


def traced(spec_path: str, gen: Generator, *args: str) -> Run:
    """Run the spec, let the generator make its calls, stop: the finished Run."""
    try:
        with Run(spec_path, *args) as run:
            run.wait_ready()
            gen.go()
            assert run.stop(signal.SIGTERM) == 0
    finally:
        gen.end()
    return run


def test_getppid_calls_are_counted_under_their_name(tmp_path):
    gen = Generator(N)
    run = traced(write(tmp_path, COUNT_SPEC.format(pid=gen.pid)), gen, "--json")
    record = count_records(run)["getppid"]
    assert record == {"type": "map", "map": "calls", "unit": None, "kind": "count",
                      "key": {"syscall": 110, "syscall_name": "getppid"}, "value": N}


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_counts_by_syscall_agree_with_bpftrace(tmp_path):
    """The same raw sys_enter tracepoint, the same pid: every syscall's count is equal."""
    gen = Generator(N)
    # One probe both counts and answers a getpgid() of this test's own: once it answers,
    # the counting is live (bpftrace announces its probes before attaching them).
    me = os.getpid()
    program = (f"tracepoint:raw_syscalls:sys_enter /pid == {gen.pid} || pid == {me}/ "
               f"{{ if (pid == {me}) {{ if (args->id == 121) {{ printf(\"live\\n\"); }} }} "
               "else { @[args->id] = count(); } }")
    oracle = subprocess.Popen(["bpftrace", "-f", "json", "-e", program],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Run(write(tmp_path, COUNT_SPEC.format(pid=gen.pid)), "--json") as run:
            run.wait_ready()
            _wait_attached(oracle)
            gen.go()
            assert run.stop(signal.SIGTERM) == 0
        oracle.send_signal(signal.SIGINT)
        out, _ = oracle.communicate(timeout=60 * SLOW)  # its exit took over 60 s in the VM
    finally:
        gen.end()
        if oracle.poll() is None:
            oracle.kill()
            oracle.wait()
    ours = {r["key"]["syscall"]: r["value"] for r in count_records(run).values()}
    theirs = _bpftrace_map(out)
    assert ours[110] == N
    assert ours == theirs


def _wait_attached(proc: subprocess.Popen) -> None:
    """Until bpftrace's probe answers a getpgid() (getpgid is 121 on x86_64)."""
    assert proc.stdout is not None
    end = time.monotonic() + 60 * SLOW
    while time.monotonic() < end:
        os.getpgid(0)
        if select.select([proc.stdout], [], [], 0.1)[0]:
            line = proc.stdout.readline()
            if "live" in line:
                return
            if not line:
                break
    raise AssertionError(f"bpftrace did not attach: {proc.stderr.read() if proc.stderr else ''}")


def _bpftrace_map(out: str) -> dict:
    import json

    for line in filter(None, out.splitlines()):
        record = json.loads(line)
        if record.get("type") == "map":
            return {int(k): v for k, v in record["data"]["@"].items()}
    raise AssertionError(f"no map in bpftrace's output: {out!r}")


# Reads from fd 100 (a pipe) wait for a thread that writes one byte every 100 ms.
PIPE_READER = """\
import os, sys, threading, time
r, w = os.pipe()
os.dup2(r, 100)
sys.stdin.readline()
def writer():
    for _ in range({n}):
        time.sleep(0.1)
        os.write(w, b"x")
threading.Thread(target=writer).start()
for _ in range({n}):
    os.read(100, 1)
"""

LATENCY_SPEC = """\
name: pipe-latency
maps:
  read_start: {{type: hash, key: u32, value: u64}}
aggregations:
  msecs:
    kind: hist
    unit: ms
probes:
  read_exit:
    attach: {{tracepoint: "syscalls:sys_exit_read"}}
    do:
      - aggregate: {{map: msecs, elapsed: {{map: read_start, key: tid}}}}
  read_enter:
    attach: {{tracepoint: "syscalls:sys_enter_read"}}
    do:
      - if: "pid == {pid} && arg0 == 100"
        then:
          - store: {{map: read_start, key: tid, value: ktime}}
"""


def test_reads_from_a_pipe_written_every_100_ms_land_in_64_to_128_ms(tmp_path):
    n = 10
    gen = Generator(code=PIPE_READER.format(n=n))
    run = traced(write(tmp_path, LATENCY_SPEC.format(pid=gen.pid)), gen, "--json")
    hists = [r for r in run.json() if r.get("type") == "hist"]
    assert hists == [{"type": "hist", "map": "msecs", "key": {}, "unit": "ms", "count": n,
                      "sum": None, "buckets": [{"lower": 64, "upper": 128, "count": n}]}]


def test_elapsed_with_a_struct_key(tmp_path):
    # Issue 24: refused before with "unknown action 'pid'"; a start keyed by a struct
    # (thread and file descriptor, say) is what a per-fd latency needs.
    n = 10
    gen = Generator(code=PIPE_READER.format(n=n))
    text = (LATENCY_SPEC.replace("key: u32, value: u64", "key: start_key, value: u64")
            .replace("key: tid", "key: {{pid: pid, tid: tid}}")
            .replace("maps:", "structs:\n  start_key: [{{pid: u32}}, {{tid: u32}}]\nmaps:", 1))
    run = traced(write(tmp_path, text.format(pid=gen.pid)), gen, "--json")
    hists = [r for r in run.json() if r.get("type") == "hist"]
    assert hists == [{"type": "hist", "map": "msecs", "key": {}, "unit": "ms", "count": n,
                      "sum": None, "buckets": [{"lower": 64, "upper": 128, "count": n}]}]


def test_text_output_draws_the_histogram_like_bpftrace(tmp_path):
    n = 4
    gen = Generator(code=PIPE_READER.format(n=n))
    run = traced(write(tmp_path, LATENCY_SPEC.format(pid=gen.pid)), gen)
    bar = "@" * 52
    assert run.out == ["@msecs: ", f"[64, 128)              {n} |{bar}|"]
