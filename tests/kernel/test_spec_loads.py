"""Specs that validate and used to fail when loaded (issue 16, "a spec that validates must
run"): LLVM exiting on large zeroing and copies, stack-sized keys, char[N] keys, syscalls
the kernel names differently."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from typing import List

from conftest import kprobes_available
from harness import ROOT, Run, trigger_exec

LOADER = ROOT / "tests" / "kernel" / "load_specs.py"


def load_specs(paths: List[str], timeout: float = 600) -> List[str]:
    """The loader's lines for `paths`, run apart: an LLVM exit(1) must not end pytest."""
    done = subprocess.run([sys.executable, str(LOADER), *paths], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = done.stdout.splitlines()
    assert done.returncode == 0, f"the loader exited {done.returncode} at {lines[-1:]}"
    return [ln for ln in lines if not ln.startswith("loading ")]


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_what_made_llvm_exit_now_loads(tmp_path):
    literal = "x" * 3000
    specs = [
        write(tmp_path, "ring_partly_set", """\
            name: ring-partly-set
            structs:
              rec:
                - n: u64
                - text: char[65000]
            maps:
              rb: {type: ringbuf, value: rec}
            probes:
              p:
                attach: {tracepoint: "sched:sched_process_exec"}
                do:
                  - emit: {to: rb, set: {n: pid}}
            """),
        write(tmp_path, "long_literal", f"""\
            name: long-literal
            structs:
              rec:
                - note: char[3001]
            maps:
              rb: {{type: ringbuf, value: rec}}
            probes:
              p:
                attach: {{tracepoint: "sched:sched_process_exec"}}
                do:
                  - emit: {{to: rb, set: {{note: "{literal}"}}}}
            """),
        write(tmp_path, "stack_key", """\
            name: stack-key
            structs:
              key_t:
                - name: char[448]
              ev:
                - a: char[400]
            maps:
              h: {type: hash, key: key_t, value: u64}
              pe: {type: perf_event_array, value: ev}
            probes:
              p:
                attach: {tracepoint: "sched:sched_process_exec"}
                do:
                  - count: {map: h, key: {name: comm}}
                  - emit: {to: pe, set: {a: comm}}
            """),
    ]
    assert load_specs(specs) == [f"ok {p}" for p in specs]


def test_count_by_comm_with_a_char16_key(tmp_path):
    spec = write(tmp_path, "by_comm", """\
        name: by-comm
        maps:
          by_comm: {type: hash, key: "char[16]", value: u64}
        probes:
          p:
            attach: {tracepoint: "sched:sched_process_exec"}
            do:
              - count: {map: by_comm, key: comm}
        output:
          - map: by_comm
        """)
    with Run(spec, "--json") as run:
        run.wait_ready()
        trigger_exec()
        assert run.stop(signal.SIGINT) == 0
    dumps = [r for r in run.json() if r["type"] == "map"]
    counts = {e["key"]: e["value"] for e in dumps[-1]["entries"]}
    assert counts.get("true", 0) >= 1, counts  # /bin/true, named after its new image


def test_syscalls_attach_where_the_running_kernel_has_them(tmp_path):
    names = {"fstat": "newfstat", "stat": "newstat", "lstat": "newlstat",
             "uname": "newuname", "sendfile": "sendfile64"}
    if os.path.isdir("/sys/kernel/tracing/events/syscalls/sys_enter_mseal"):
        names["mseal"] = "mseal"  # 6.10 and later: not on the 6.1 VM
    probes = "".join(f"  {n}:\n    attach: {{syscall: {n}}}\n    do: []\n" for n in names)
    spec = write(tmp_path, "syscalls", "name: syscalls\nprobes:\n" + probes)
    with Run(spec, "--json") as run:
        run.wait_ready()
        assert run.stop(signal.SIGINT) == 0
    methods = {r["probe"]: r["method"] for r in run.json() if r["type"] == "attach"}
    if kprobes_available():
        # the method names the kernel's entry, whose function the kprobe is on
        # (fstat: __x64_sys_newfstat)
        assert methods == {n: f"kprobe on the {e} syscall" for n, e in names.items()}
    else:
        assert methods == {n: f"tracepoint syscalls:sys_enter_{e}" for n, e in names.items()}


def test_64_probes_on_one_tracepoint_attach(tmp_path):
    """The limit check refuses the 65th (tests/unit/test_limits.py): 64 must all attach.
    syncfs: a tracepoint no other test here uses, as the kernel's limit is machine-wide."""
    probes = "".join(f"  p{i}:\n    attach: {{tracepoint: \"syscalls:sys_enter_syncfs\"}}\n"
                     "    do: []\n" for i in range(64))
    spec = write(tmp_path, "many", "name: many\nprobes:\n" + probes)
    with Run(spec, "--json") as run:
        run.wait_ready()
        assert run.stop(signal.SIGINT) == 0
    attached = [r for r in run.json() if r["type"] == "attach"]
    assert len(attached) == 64
    assert {r["method"] for r in attached} == {"tracepoint syscalls:sys_enter_syncfs"}


def test_a_large_key_looked_up_then_deleted_runs(tmp_path):
    # Issue 24: this validated, then the run printed nothing and exited 1 (LLVM: "the BPF
    # stack limit of 512 bytes is exceeded"): the lookup's key lived to the end of the
    # function beside the delete's. Now each key has a block of its own.
    spec = write(tmp_path, "lookup_delete", """\
        name: lookup-delete
        structs:
          ev:
            - n: u64
            - path: char[256]
        maps:
          seen: {type: hash, key: "char[256]", value: u64}
          out: {type: ringbuf, value: ev}
        probes:
          p:
            attach: {tracepoint: "syscalls:sys_enter_unlinkat"}
            do:
              - if: 'startswith(args.pathname, "/tmp/er-lookup-delete-")'
                then:
                  - store: {map: seen, key: args.pathname, value: 41}
                  - let: {n: {lookup: {map: seen, key: args.pathname}, default: 0}}
                  - delete: {map: seen, key: args.pathname}
                  - let: {gone: {lookup: {map: seen, key: args.pathname}, default: 7}}
                  - emit: {to: out, set: {n: "n + gone", path: args.pathname}}
        """)
    victim = f"/tmp/er-lookup-delete-{os.getpid()}"
    with Run(spec, "--json") as run:
        run.wait_ready()
        subprocess.run(["/bin/sh", "-c", f"touch {victim}; rm -f {victim}"], check=True)
        assert run.stop(signal.SIGINT) == 0
    events = [r for r in run.json() if r["type"] == "event"]
    assert [(e["data"]["n"], e["data"]["path"]) for e in events] == [(48, victim)], run.err


def test_what_the_stack_check_passes_at_its_limit_loads(tmp_path):
    # 448 bytes of buffers at once, each way the check counts them (runner/check/stack.py).
    def spec(name: str, structs: str, maps: str, actions: str) -> str:
        return write(tmp_path, name, f"name: {name}\nstructs:\n  big: [{{b: \"{structs}\"}}]\n"
                     f"maps:\n{maps}probes:\n  p:\n    attach: {{tracepoint: "
                     f"\"syscalls:sys_enter_unlinkat\"}}\n    do:\n{actions}")

    literal = "x" * 246
    specs = [
        spec("key-and-value", "char[224]", "  h: {type: hash, key: \"char[224]\", value: big}\n",
             "      - store: {map: h, key: args.pathname, value: {b: args.pathname}}\n"),
        spec("copy-and-key", "char[224]", "  vals: {type: hash, key: u32, value: big}\n"
             "  h: {type: hash, key: \"char[224]\"}\n",
             "      - let: {s: {lookup: {map: vals, key: tid}}}\n"
             "      - delete: {map: h, key: s.b}\n"),
        spec("lookup-and-delete", "char[8]", "  h: {type: hash, key: \"char[448]\"}\n",
             "      - let: {n: {lookup: {map: h, key: args.pathname}, default: 0}}\n"
             "      - delete: {map: h, key: args.pathname}\n"
             "      - count: {map: h, key: args.pathname}\n"),
        spec("copy-and-string", "char[200]", "  vals: {type: hash, key: u32, value: big}\n",
             "      - let: {s: {lookup: {map: vals, key: tid}}}\n"
             f"      - if: 'startswith(args.pathname, \"{literal}\")'\n"
             "        then: [{delete: {map: vals, key: tid}}]\n"),
    ]
    assert load_specs(specs) == [f"ok {p}" for p in specs]
