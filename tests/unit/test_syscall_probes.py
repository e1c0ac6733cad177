"""A `syscall:` probe attaches where the running kernel's syscall really is: its entry name
(fstat is newfstat) names the tracepoint and the kprobe function; one no table numbers yet
has no raw sys_enter fallback, which could not tell it apart."""

from __future__ import annotations

import pytest

from runner.check import checker
from runner.support import tracepoints
from runner.support.syscalls import Syscall

from .util import spec_from_text


def _candidates(syscall: str, arch: str = "x86_64"):
    spec = spec_from_text(f"name: x\nprobes:\n  p:\n    attach: {{syscall: {syscall}}}\n"
                          "    do:\n      - print: hi\n", arch=arch)
    return [(c.kind, c.target, c.syscall) for c in spec.probes[0].candidates]


@pytest.mark.parametrize("name,entry,nr", [
    ("fstat", "newfstat", 5), ("stat", "newstat", 4), ("lstat", "newlstat", 6),
    ("uname", "newuname", 63), ("sendfile", "sendfile64", 40), ("mseal", "mseal", 462),
])
def test_syscall_options_use_the_kernel_entry_name(name, entry, nr):
    cands = _candidates(name)
    assert cands == [("kprobe", name, entry),
                     ("tracepoint", f"syscalls:sys_enter_{entry}", None),
                     ("raw_tracepoint", "sys_enter", None)]


def test_raw_fallback_filters_on_the_syscall_number():
    spec = spec_from_text("name: x\nprobes:\n  p:\n    attach: {syscall: sendfile}\n"
                          "    do:\n      - print: hi\n")
    assert spec.probes[0].candidates[2].function.filter_nr == 40


def test_a_syscall_only_the_kernel_knows_has_no_raw_fallback(monkeypatch):
    shipped = tracepoints.shipped_catalog("x86_64")
    newer = Syscall("futex_wake2", None, "futex_wake2")

    class Newer:  # the catalog of a kernel with a syscall the tables lack
        def syscall(self, name):
            return newer if name == "futex_wake2" else shipped.syscall(name)

        def syscalls(self):
            return shipped.syscalls()

        def format(self, name):
            return None

    monkeypatch.setattr(checker.tracepoints, "open_catalog", lambda arch: Newer())
    assert _candidates("futex_wake2") == [
        ("kprobe", "futex_wake2", "futex_wake2"),
        ("tracepoint", "syscalls:sys_enter_futex_wake2", None)]
