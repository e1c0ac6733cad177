"""Syscall names <-> numbers for an architecture, from tables shipped in runner/data.

The tables are generated from the Linux UAPI headers by scripts/gen-syscalls, so a
spec names `timer_create` and gets 222 on x86_64 and 107 on arm64.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Dict

ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


def host_arch() -> str:
    machine = os.uname().machine  # not platform: host_arch is on the start-up path
    return ARCHES.get(machine, machine)


@cache
def table(arch: str) -> Dict[str, int]:
    """name -> number for `arch`; raises KeyError for an architecture we have no table for."""
    if arch not in ARCHES.values():
        raise KeyError(arch)
    from runner.support.resources import (
        read_text,  # importlib.resources costs 7 ms: only when needed
    )

    out = {}
    for line in read_text("data", f"syscalls-{arch}.txt").splitlines():
        name, num = line.split()
        out[name] = int(num)
    return out


def names_by_number(arch: str) -> Dict[int, str]:
    return {n: name for name, n in table(arch).items()}
