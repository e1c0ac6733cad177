"""Constructs of the spec language run for real: a tracepoint's own fields, and the
entry/exit pairing of the issue ("store ktime at entry keyed by tid, at exit compute the
delta, delete") with exact or bounded values."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading

from harness import SLOW, Run

EXEC_FIELDS = """\
name: exec_fields
structs:
  ev: [{pid: s32}, {old_pid: s32}, {file: 'char[128]'}]
maps:
  out: {type: ringbuf, value: ev}
probes:
  exec:
    attach: {tracepoint: "sched:sched_process_exec"}
    do:
      - if: 'startswith(args.filename, "%s")'
        then:
          - emit: {to: out, set: {pid: args.pid, old_pid: args.old_pid, file: args.filename}}
"""

SLEEP_LATENCY = """\
name: sleep_latency
params:
  min_ms: {type: u64, default: 0}
structs:
  ev: [{pid: u32}, {ms: u64}, {ret: s64}]
maps:
  starts: {type: hash, key: u32, value: u64}
  out: {type: ringbuf, value: ev}
probes:
  enter:
    attach: {syscall: clock_nanosleep}
    do:
      - if: 'comm == "er-lat-sleep"'
        then: [{store: {map: starts, key: tid, value: ktime}}]
  exit:
    attach: {syscall_exit: clock_nanosleep}
    do:
      - let: {start: {lookup: {map: starts, key: tid}}}
      - let: {ms: "(ktime - start) / 1000000"}
      - if: "ms >= params.min_ms"
        then: [{emit: {to: out, set: {pid: pid, ms: ms, ret: args.ret}}}]
      - delete: {map: starts, key: tid}
"""


def _events(run: Run):
    return [r["data"] for r in run.json() if r.get("type") == "event"]


def test_sched_process_exec_fields_read_by_name(tmp_path):
    binary = tmp_path / "er-exec-fields"
    shutil.copy("/bin/true", binary)
    spec = tmp_path / "exec_fields.yaml"
    spec.write_text(EXEC_FIELDS % tmp_path)
    with Run(str(spec), "--json").wait_ready() as run:
        child = subprocess.Popen([str(binary)])
        child.wait()
        run.wait_output(lambda out: any(str(binary) in ln for ln in out))
        assert run.stop() == 0
    # pid_t fields are s32; the filename is a __data_loc string in the record.
    assert _events(run) == [{"pid": child.pid, "old_pid": child.pid, "file": str(binary)}]


def test_entry_exit_latency_with_map_state(tmp_path):
    binary = tmp_path / "er-lat-sleep"
    shutil.copy("/bin/sleep", binary)
    spec = tmp_path / "sleep_latency.yaml"
    spec.write_text(SLEEP_LATENCY)
    with Run(str(spec), "--json").wait_ready() as run:
        child = subprocess.Popen([str(binary), "0.3"])
        child.wait()
        run.wait_output(lambda out: any(f'"pid": {child.pid},' in ln for ln in out))
        assert run.stop() == 0
    [event] = [e for e in _events(run) if e["pid"] == child.pid]
    assert event["ret"] == 0
    assert 300 <= event["ms"] < 300 + 200 * SLOW


LONG = "/tmp/er-string-compare-" + "x" * 80  # 103 bytes

LONG_LITERALS = f"""\
name: long_literals
structs:
  ev: [{{eq: u8}}, {{pre: u8}}, {{ne: u8}}, {{path: 'char[160]'}}]
maps:
  out: {{type: ringbuf, value: ev}}
probes:
  p:
    attach: {{tracepoint: "syscalls:sys_enter_unlinkat"}}
    do:
      - if: 'startswith(args.pathname, "/tmp/er-string-compare-")'
        then:
          - emit:
              to: out
              set: {{path: args.pathname}}
      - if: 'args.pathname == "{LONG}"'
        then: [{{emit: {{to: out, set: {{eq: 1, path: args.pathname}}}}}}]
      - if: 'startswith(args.pathname, "{LONG[:-1]}")'
        then: [{{emit: {{to: out, set: {{pre: 1, path: args.pathname}}}}}}]
      - if: 'args.pathname != "{LONG}" && startswith(args.pathname, "/tmp/er-string-compare-")'
        then: [{{emit: {{to: out, set: {{ne: 1, path: args.pathname}}}}}}]
"""


def test_long_literals_compare_exactly(tmp_path):
    # Issue 24: a comparison with a literal of 16 bytes or more validated, then the
    # verifier refused it (E2BIG: LLVM's branches made 2^n paths).
    spec = tmp_path / "long_literals.yaml"
    spec.write_text(LONG_LITERALS)
    paths = [LONG, LONG + "y", LONG[:-1] + "z", LONG[:-1]]
    with Run(str(spec), "--json").wait_ready() as run:
        for p in paths:
            subprocess.run(["/bin/sh", "-c", f"touch {p}; rm -f {p}"], check=True)
        run.wait_output(lambda out: sum(LONG[:-1] in ln for ln in out) >= 12)
        assert run.stop() == 0
    got = sorted((e["path"], e["eq"], e["pre"], e["ne"]) for e in _events(run))
    flags = {LONG: [(1, 0, 0), (0, 1, 0)], LONG + "y": [(0, 1, 0), (0, 0, 1)],
             LONG[:-1] + "z": [(0, 1, 0), (0, 0, 1)], LONG[:-1]: [(0, 1, 0), (0, 0, 1)]}
    want = sorted([(p, 0, 0, 0) for p in paths]
                  + [(p, *f) for p, fs in flags.items() for f in fs])
    assert got == want


EXIT_NR = """\
name: exit_nr
aggregations:
  any_method: {kind: count, key: {nr: s64}, decode: {nr: syscall}}
  tracepoint: {kind: count, key: {nr: s64}, decode: {nr: syscall}}
  raw: {kind: count, key: {nr: s64}, decode: {nr: syscall}}
probes:
  any_method:        # the kretprobe where the kernel has kprobes, else the tracepoint
    attach: {syscall_exit: getppid}
    do:
      - if: "tid == TID"
        then: [{aggregate: {map: any_method, key: {nr: syscall_nr}}}]
  tracepoint:
    attach: {tracepoint: "syscalls:sys_exit_getppid"}
    do:
      - if: "tid == TID"
        then: [{aggregate: {map: tracepoint, key: {nr: syscall_nr}}}]
  raw:               # every syscall's exit: the number from the user's registers
    attach: {raw_tracepoint: sys_exit}
    do:
      - if: "tid == TID"
        then: [{aggregate: {map: raw, key: {nr: syscall_nr}}}]
"""


def test_syscall_nr_at_every_kind_of_syscall_exit(tmp_path):
    spec = tmp_path / "exit_nr.yaml"
    spec.write_text(EXIT_NR.replace("TID", str(threading.get_native_id())))
    with Run(str(spec), "--json") as run:
        run.wait_ready()
        for _ in range(5):
            os.getppid()
        assert run.stop() == 0, run.err
    counts = {(r["map"], r["key"]["nr_name"]): r["value"] for r in run.json()
              if r.get("type") == "map"}
    assert counts[("any_method", "getppid")] == counts[("tracepoint", "getppid")] == \
        counts[("raw", "getppid")] == 5
    assert {m for m, name in counts if name != "getppid"} <= {"raw"}


STRING_PARAMS = """\
name: string_params
params:
  comm: {type: "char[16]", default: "", description: "only this command (empty: none)"}
  prefix: {type: "char[16]", default: "er-strp-"}
aggregations:
  exact: {kind: count, key: {comm: "char[16]"}}
  prefixed: {kind: count, key: {comm: "char[16]"}}
probes:
  p:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - if: 'params.comm != "" && comm == params.comm'
        then: [{aggregate: {map: exact, key: {comm: comm}}}]
      - if: 'startswith(comm, params.prefix)'
        then: [{aggregate: {map: prefixed, key: {comm: comm}}}]
"""

# Names itself (prctl PR_SET_NAME), then calls getppid() N times.
NAMED = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0); "
         "[os.getppid() for _ in range(int(sys.argv[2]))]")


def test_string_parameters_filter_by_command_exactly_and_by_prefix(tmp_path):
    spec = tmp_path / "string_params.yaml"
    spec.write_text(STRING_PARAMS)
    calls = {"er-strp-a": 3, "er-strp-ab": 5, "er-strp-b": 4, "other-er-strp": 6}
    with Run(str(spec), "--json", "--set", "comm=er-strp-a") as run:
        run.wait_ready()
        for name, n in calls.items():
            subprocess.run([sys.executable, "-c", NAMED, name, str(n)], check=True)
        assert run.stop() == 0, run.err
    counts = {(r["map"], r["key"]["comm"]): r["value"] for r in run.json()
              if r.get("type") == "map"}
    assert counts == {("exact", "er-strp-a"): 3, ("prefixed", "er-strp-a"): 3,
                      ("prefixed", "er-strp-ab"): 5, ("prefixed", "er-strp-b"): 4}
