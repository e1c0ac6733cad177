"""Probes on several syscalls run for real: a list seen by one probe, a glob over every
syscall, and their exits, each attached once to raw sys_enter/sys_exit (and, forced by
EBPF_RUN_SYSCALL_ATTACH=each, to each syscall's tracepoint), with exact counts from a
process of our own that makes a known number of each call."""

from __future__ import annotations

import subprocess
from typing import Dict

from getppid import Generator
from harness import ROOT, Run

# x86_64 numbers (open and creat exist there only): openat 257, open 2, creat 85.
OPENS = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1]
sys.stdin.readline()
for _ in range(3):
    os.close(os.open(d + "/a", os.O_RDONLY | os.O_CREAT, 0o600))
for _ in range(2):
    os.close(libc.syscall(2, (d + "/a").encode(), 0))
for _ in range(4):
    os.close(libc.syscall(85, (d + "/b").encode(), 0o600))
"""

LIST_SPEC = """\
name: opens_seen
params:
  pid: {type: u32, default: 0}
aggregations:
  calls: {kind: count, key: {syscall: s64}, decode: {syscall: syscall}}
  results: {kind: count, key: {syscall: s64}, decode: {syscall: syscall}}
probes:
  opens:
    attach: {syscall: [openat, open, creat]}
    do:
      - if: "pid == params.pid"
        then: [{aggregate: {map: calls, key: {syscall: syscall_name}}}]
  opened:
    attach: {syscall_exit: [openat, open, creat]}
    do:
      - if: "pid == params.pid"
        then:
          - if: "args.ret >= 0"
            then: [{aggregate: {map: results, key: {syscall: syscall_nr}}}]
"""

# getppid 110, sched_yield 24, getpgrp 111, umask 95: calls the interpreter makes nowhere else.
SEVERAL = """\
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.stdin.readline()
for n, times in ((110, 5), (24, 7), (111, 3), (95, 2)):
    for _ in range(times):
        libc.syscall(n, 0o22) if n == 95 else libc.syscall(n)
"""

GLOB_SPEC = """\
name: every_syscall
params:
  pid: {type: u32, default: 0}
aggregations:
  calls: {kind: count, key: {syscall: s64}, decode: {syscall: syscall}}
probes:
  all:
    attach: {syscall: "*"}
    do:
      - if: "pid == params.pid"
        then: [{aggregate: {map: calls, key: {syscall: syscall_name}}}]
"""


def _counts(run: Run, name: str) -> Dict[tuple, int]:
    out = {}
    for r in run.json():
        if r.get("type") == "map" and r["map"] == name:
            key = r["key"]
            out[(key["syscall_name"], *[v for k, v in key.items()
                                       if k not in ("syscall", "syscall_name")])] = r["value"]
    return out


def _run(tmp_path, spec_text: str, code: str, env=None) -> Run:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    gen = Generator(code=code)
    try:
        with Run(str(spec), "--json", "--set", f"pid={gen.pid}", env=env).wait_ready() as run:
            gen.go()
            assert run.stop() == 0
    finally:
        gen.end()
    return run


def _opens_code(tmp_path) -> str:
    return OPENS.replace("sys.argv[1]", repr(str(tmp_path)))


def test_a_list_of_syscalls_in_one_probe(tmp_path):
    run = _run(tmp_path, LIST_SPEC, _opens_code(tmp_path))
    assert _counts(run, "calls") == {("openat",): 3, ("open",): 2, ("creat",): 4}
    assert _counts(run, "results") == {("openat",): 3, ("open",): 2, ("creat",): 4}
    assert "ebpf-run: opens: attached to raw_tracepoint sys_enter for 3 syscalls" in run.err
    assert "ebpf-run: opened: attached to raw_tracepoint sys_exit for 3 syscalls" in run.err


def test_a_list_of_syscalls_on_each_tracepoint(tmp_path):
    run = _run(tmp_path, LIST_SPEC, _opens_code(tmp_path), {"EBPF_RUN_SYSCALL_ATTACH": "each"})
    assert _counts(run, "calls") == {("openat",): 3, ("open",): 2, ("creat",): 4}
    assert _counts(run, "results") == {("openat",): 3, ("open",): 2, ("creat",): 4}
    assert ("ebpf-run: opens: attached to tracepoints syscalls:sys_enter_NAME of 3 syscalls "
            "(raw_tracepoint sys_enter for 3 syscalls: ruled out by "
            "EBPF_RUN_SYSCALL_ATTACH=each)") in run.err


def test_a_glob_over_every_syscall(tmp_path):
    run = _run(tmp_path, GLOB_SPEC, SEVERAL)
    counts = _counts(run, "calls")
    assert {k: counts.get((k,)) for k in ("getppid", "sched_yield", "getpgrp", "umask")} == \
        {"getppid": 5, "sched_yield": 7, "getpgrp": 3, "umask": 2}
    assert counts[("exit_group",)] == 1  # and its end: calls the list names nowhere
    attached = [ln for ln in run.err if ln.startswith("ebpf-run: all: attached to ")]
    assert len(attached) == 1 and attached[0].startswith(
        "ebpf-run: all: attached to raw_tracepoint sys_enter for "), attached


# A process of ours waits for a child, then execs /bin/true, which exits: the wait under
# its own name, the exec and the exit under the new one.
PROC = """\
import os, sys
sys.stdin.readline()
child = os.fork()
if child == 0:
    os._exit(0)
os.waitpid(child, 0)
os.execv("/bin/true", ["true"])
"""

TRACEPOINT_GLOB = """\
name: process_events
params:
  pid: {type: u32, default: 0}
aggregations:
  events: {kind: count, key: {comm: "char[16]"}}
probes:
  proc:
    attach: {tracepoint: "sched:sched_process_[ew]*"}
    do:
      - if: "pid == params.pid"
        then: [{aggregate: {map: events, key: {comm: comm}}}]
"""


def test_a_glob_of_tracepoints_in_one_probe(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(TRACEPOINT_GLOB)
    gen = Generator(code=PROC)
    try:
        with open(f"/proc/{gen.pid}/comm") as f:
            comm = f.read().strip()
        with Run(str(spec), "--json", "--set", f"pid={gen.pid}").wait_ready() as run:
            gen.go()
            assert run.stop() == 0
    finally:
        gen.end()
    counts = {r["key"]["comm"]: r["value"] for r in run.json() if r.get("type") == "map"}
    assert counts == {comm: 1, "true": 2}  # wait; exec and exit
    assert ("ebpf-run: proc: attached to tracepoints sched:sched_process_exec and 2 more"
            in run.err)


COMPAT_SPEC = """\
name: no_compat
params:
  pid: {type: u32, default: 0}
aggregations:
  calls: {kind: count, key: {syscall: s64}, decode: {syscall: syscall}}
  results: {kind: count, key: {syscall: s64}, decode: {syscall: syscall}}
probes:
  closes:
    attach: {syscall: [close, getppid]}
    do:
      - if: "pid == params.pid"
        then: [{aggregate: {map: calls, key: {syscall: syscall_name}}}]
  closed:
    attach: {syscall_exit: [close, getppid]}
    do:
      - if: "pid == params.pid"
        then: [{aggregate: {map: results, key: {syscall: syscall_nr}}}]
"""


def test_32_bit_syscalls_are_not_counted_under_the_64_bit_numbers(tmp_path):
    """raw sys_enter/sys_exit see an int $0x80 syscall with its ia32 number: 3, read there,
    is close in x86_64's table. The probe keeps x86_64's syscalls only, as the syscalls:*
    tracepoints do (a review found 7 ia32 reads counted as closes)."""
    exe = tmp_path / "int80"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "tests" / "workloads" / "int80.c")],
                   check=True)
    spec = tmp_path / "spec.yaml"
    spec.write_text(COMPAT_SPEC)
    work = subprocess.Popen([str(exe)], stdin=subprocess.PIPE)
    try:
        with Run(str(spec), "--json", "--set", f"pid={work.pid}").wait_ready() as run:
            work.communicate(b"go\n", timeout=60)
            assert work.returncode == 0
            assert run.stop() == 0
    finally:
        if work.poll() is None:
            work.kill()
            work.wait()
    assert _counts(run, "calls") == {("close",): 3, ("getppid",): 2}
    assert _counts(run, "results") == {("close",): 3, ("getppid",): 2}
