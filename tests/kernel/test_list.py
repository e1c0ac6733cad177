"""`ebpf-run list` on the running kernel, with bpftrace -lv as the oracle for fields.

Needs root and tracefs (tracefs is mode 0700), and bpftrace (`apt-get install bpftrace`).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from typing import Dict, List

import pytest
from harness import ROOT

from runner.cli.list import list_probes
from runner.support import tracepoints

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or tracepoints.live_names() is None,
                       reason="needs root and tracefs mounted at /sys/kernel/tracing"),
    # host_only: listing tracefs, with bpftrace -lv as the oracle (slow under emulation).
    pytest.mark.host_only,
]

needs_bpftrace = pytest.mark.skipif(shutil.which("bpftrace") is None,
                                    reason="bpftrace is the oracle: apt-get install bpftrace")


def ours(pattern: str, *flags: bool) -> str:
    out, err = io.StringIO(), io.StringIO()
    assert list_probes(pattern, *flags, out=out, err=err) == 0, err.getvalue()
    assert err.getvalue() == ""  # live tracefs: nothing to say about the source
    return out.getvalue()


def by_probe(text: str) -> Dict[str, List[str]]:
    """`probe` lines and their indented field lines, as both tools print them."""
    out: Dict[str, List[str]] = {}
    current: List[str] = []
    for line in text.splitlines():
        if line.startswith("    "):
            current.append(line.strip())
        elif line:
            current = out.setdefault(line, [])
    return out


def bpftrace_lv(pattern: str) -> Dict[str, List[str]]:
    res = subprocess.run(["bpftrace", "-lv", pattern], capture_output=True, text=True,
                         timeout=60, check=True)
    return by_probe(res.stdout)


@needs_bpftrace
@pytest.mark.parametrize("pattern", [
    "tracepoint:syscalls:sys_enter_openat",
    "tracepoint:syscalls:sys_*_open*",
    "tracepoint:sched:*",
    "tracepoint:sock:inet_sock_set_state",
    "tracepoint:syscalls:sys_enter_getppid",
    "tracepoint:*",
])
def test_list_verbose_shows_the_fields_bpftrace_shows(pattern):
    theirs = bpftrace_lv(pattern)
    mine = by_probe(ours(pattern, True))
    assert theirs, f"bpftrace listed nothing for {pattern}"
    assert mine == theirs


@needs_bpftrace
def test_openat_fields_and_types_exactly():
    expected = ["int __syscall_nr", "int dfd", "const char * filename", "int flags",
                "umode_t mode"]
    assert bpftrace_lv("tracepoint:syscalls:sys_enter_openat") == {
        "tracepoint:syscalls:sys_enter_openat": expected}
    assert by_probe(ours("tracepoint:syscalls:sys_enter_openat", True)) == {
        "tracepoint:syscalls:sys_enter_openat": expected}


def test_list_finds_mseal_a_syscall_newer_than_the_6_1_headers():
    assert ours("syscall:mseal") == "syscall:mseal\n"
    line = json.loads(ours("syscall:mseal", True, True))
    assert line["number"] == 462
    assert {"method": "tracepoint", "target": "syscalls:sys_enter_mseal", "filter_nr": None,
            "unsure": False} in line["attach"]
    assert [f["name"] for f in line["fields"]] == ["start", "len", "flags"]


def test_list_renamed_syscalls_use_the_kernels_tracepoints():
    text = ours("syscall:*stat", True)
    for name, entry in (("stat", "newstat"), ("fstat", "newfstat"), ("lstat", "newlstat")):
        assert f"syscall:{name}\n    attach: " in text
        assert f"tracepoint syscalls:sys_enter_{entry}" in text


def test_every_tracefs_syscall_is_listed():
    names = tracepoints.live_names() or ()
    entries = {n.split("sys_enter_", 1)[1] for n in names
               if n.startswith("syscalls:sys_enter_")}
    listed = [json.loads(line) for line in ours("syscall:*", False, True).splitlines()]
    targets = {a["target"].split("sys_enter_", 1)[1] for p in listed for a in p["attach"]
               if a["method"] == "tracepoint"}
    assert targets == entries


def test_the_shipped_table_matches_the_kernel_it_was_generated_on():
    shipped = tracepoints.shipped_catalog(tracepoints.GENERATED_ON)
    from runner.support.resources import read_text

    header = read_text("data", f"tracepoints-{tracepoints.GENERATED_ON}.txt").splitlines()[0]
    if f" {os.uname().release} " not in header:
        pytest.skip(f"the table was generated on another kernel: {header}")
    live = tracepoints.open_catalog()
    assert list(shipped.names) == tracepoints.shipped_names(live.names)
    for name in shipped.names:
        assert shipped.format(name).fields == live.format(name).fields, name


def test_list_is_a_command_of_the_cli():
    """`ebpf-run list PATTERN --json` through the real command line, as a user types it."""
    res = subprocess.run([sys.executable, "-m", "runner", "list", "syscall:getppid", "--json"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    records = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["probe"] for r in records] == ["syscall:getppid"]
