"""Syscall tables: numbers per architecture, the kernel's entry names, the running kernel's."""

from __future__ import annotations

import pytest

from runner.support import syscalls
from runner.support.syscalls import Syscall, kernel_syscalls, lookup

from .util import ROOT


def test_numbers_per_architecture():
    assert syscalls.table("x86_64")["timer_create"] == 222
    assert syscalls.table("aarch64")["timer_create"] == 107
    assert syscalls.names_by_number("x86_64")[0] == "read"
    with pytest.raises(KeyError):
        syscalls.table("mips")


@pytest.mark.parametrize(("name", "x86_64", "aarch64"), [
    # 6.5 to 6.12, from Debian's 6.12 headers
    ("cachestat", 451, 451), ("fchmodat2", 452, 452), ("map_shadow_stack", 453, 453),
    ("futex_wake", 454, 454), ("statmount", 457, 457), ("listmount", 458, 458),
    ("lsm_list_modules", 461, 461), ("mseal", 462, 462),
    # 6.13 to 6.17, checked on 6.18 by scripts/gen-syscalls --verify
    ("setxattrat", 463, 463), ("removexattrat", 466, 466), ("open_tree_attr", 467, 467),
    ("file_getattr", 468, 468), ("file_setattr", 469, 469),
])
def test_syscalls_newer_than_6_1_are_known(name, x86_64, aarch64):
    assert syscalls.table("x86_64")[name] == x86_64
    assert syscalls.table("aarch64")[name] == aarch64


def test_arch_specific_syscalls():
    x86, arm = syscalls.syscalls("x86_64"), syscalls.syscalls("aarch64")
    assert x86["uretprobe"] == Syscall("uretprobe", 335, "uretprobe")
    assert x86["uprobe"] == Syscall("uprobe", 336, "uprobe")
    assert "uprobe" not in arm and "open" not in arm
    assert arm["memfd_secret"] == Syscall("memfd_secret", 447, "memfd_secret")


@pytest.mark.parametrize(("arch", "name", "entry", "function"), [
    ("x86_64", "stat", "newstat", "__x64_sys_newstat"),
    ("x86_64", "fstat", "newfstat", "__x64_sys_newfstat"),
    ("x86_64", "lstat", "newlstat", "__x64_sys_newlstat"),
    ("x86_64", "uname", "newuname", "__x64_sys_newuname"),
    ("x86_64", "sendfile", "sendfile64", "__x64_sys_sendfile64"),
    ("x86_64", "umount2", "umount", "__x64_sys_umount"),
    ("x86_64", "exit", "exit", "__x64_sys_exit"),
    ("x86_64", "openat", "openat", "__x64_sys_openat"),
    ("aarch64", "fstat", "newfstat", "__arm64_sys_newfstat"),
    ("aarch64", "fstatat", "newfstatat", "__arm64_sys_newfstatat"),
    ("aarch64", "fadvise64", "fadvise64_64", "__arm64_sys_fadvise64_64"),
])
def test_the_kernel_names_a_syscall_by_its_entry(arch, name, entry, function):
    sc = syscalls.syscalls(arch)[name]
    assert sc.entry == entry
    assert sc.enter_tracepoint == f"syscalls:sys_enter_{entry}"
    assert sc.exit_tracepoint == f"syscalls:sys_exit_{entry}"
    assert sc.kprobe_function(arch) == function


def test_unimplemented_slots_have_no_entry():
    sc = syscalls.syscalls("x86_64")["_sysctl"]
    assert (sc.number, sc.entry, sc.enter_tracepoint, sc.kprobe_function("x86_64")) == (
        156, None, None, None)


def test_the_running_kernel_adds_syscalls_no_table_has():
    known = kernel_syscalls("x86_64", ["openat", "newstat", "brand_new"])
    assert known["brand_new"] == Syscall("brand_new", None, "brand_new")
    assert "newstat" not in known  # it is stat's entry, not a syscall of its own
    assert known["stat"] == Syscall("stat", 4, "newstat")


def test_lookup_by_uapi_name_or_entry_name():
    known = syscalls.syscalls("x86_64")
    assert lookup("stat", known) == Syscall("stat", 4, "newstat")
    assert lookup("newstat", known) == Syscall("stat", 4, "newstat")
    assert lookup("sendfile64", known) == Syscall("sendfile", 40, "sendfile64")
    assert lookup("nosuch", known) is None


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_tables_are_sorted_by_number_with_unique_names_and_numbers(arch):
    lines = (ROOT / "runner" / "data" / f"syscalls-{arch}.txt").read_text().splitlines()
    rows = [line.split() for line in lines]
    assert all(len(r) == 3 for r in rows)
    numbers = [int(r[1]) for r in rows]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert len({r[0] for r in rows}) == len(rows)
    assert len(rows) == {"x86_64": 383, "aarch64": 326}[arch]
