"""Filling prog_arrays before a probe attaches, and reading them back.

A table is written slot by slot (the default program everywhere, then the named
entries), then every slot is read back and compared with the id of the program meant to
be there: a probe only attaches once its tail calls go where the spec says. Tables can
have millions of slots, so nothing here holds a per-slot list, and both passes ask
`should_stop` every few thousand slots: a signal must not wait for a 16M-slot fill.
"""

from __future__ import annotations

import ctypes as ct
import os
from typing import Any, Callable, Dict, Optional

from runner.errors import KernelError
from runner.model.spec import Function, Spec, TableFill

CHECK_EVERY = 4096  # slots between two looks at should_stop


class StopRequested(Exception):
    """A stop came while a table was being filled: the attach is abandoned."""


def fill(bcc: Any, bpf: Any, spec: Spec, table: TableFill, context: str,
         load: Callable[[Function], Any], should_stop: Callable[[], bool]) -> None:
    arr = bpf[table.map.name.encode()]
    fds: Dict[str, int] = {}

    def fd_of(prog: Optional[str]) -> int:
        if prog is None:
            return -1
        if prog not in fds:
            fds[prog] = load(_program_function(spec, prog, context)).fd
        return fds[prog]

    entries = {slot: prog for slot, prog, _ in table.entries}
    slots = range(table.map.max_entries) if table.default else sorted(entries)
    for i, slot in enumerate(slots):
        if i % CHECK_EVERY == 0 and should_stop():
            raise StopRequested()
        arr[ct.c_int(slot)] = ct.c_int(fd_of(entries.get(slot, table.default)))
    ids = {fd: _prog_id(fd) for fd in fds.values()}
    for i, slot in enumerate(slots):
        if i % CHECK_EVERY == 0 and should_stop():
            raise StopRequested()
        want = ids[fd_of(entries.get(slot, table.default))]
        got = _read_prog_slot(bcc, arr.map_fd, slot)
        if got != want:
            raise KernelError(f"tail-call table {table.map.name}[{slot}] holds program id "
                              f"{got}, expected {want}")


BPF_MAP_TYPE_PROG_ARRAY = 3


def renew(bcc: Any, bpf: Any, table: TableFill) -> None:
    """Give the table a new, empty prog_array under the same descriptor number.

    The kernel binds a prog_array to the program type of the first program loaded that
    uses it, for the map's whole life. An attach option that loaded and then failed to
    attach leaves the table bound to its type (a kprobe, say), and every later option of
    another type (a tracepoint) would fail to load with EINVAL. BCC wrote the descriptor's
    number into the compiled instructions, so a fresh map dup2'ed onto that number is the
    one the next option's programs load against.
    """
    old_fd = bpf[table.map.name.encode()].map_fd
    create = bcc.libbcc.lib.bcc_create_map  # (type, name, key size, value size, entries, flags)
    create.restype = ct.c_int
    create.argtypes = [ct.c_int, ct.c_char_p, ct.c_int, ct.c_int, ct.c_int, ct.c_int]
    new_fd = create(BPF_MAP_TYPE_PROG_ARRAY, table.map.name.encode(), 4, 4,
                    table.map.max_entries, 0)
    if new_fd < 0:
        raise KernelError(f"cannot make a new tail-call table {table.map.name} "
                          f"(error {-new_fd}) after an attach option failed")
    try:
        os.dup2(new_fd, old_fd)
    finally:
        os.close(new_fd)


def _program_function(spec: Spec, prog: str, context: str) -> Function:
    for p in spec.programs:
        if p.name == prog:
            for fn in p.functions:
                if fn.context == context:
                    return fn
    raise KernelError(f"program {prog} has no {context} variant")  # the checker prevents this


def _prog_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("prog_id:"):
                return int(line.split()[1])
    raise KernelError(f"cannot read the id of BPF program fd {fd}")


def _read_prog_slot(bcc: Any, map_fd: int, slot: int) -> int:
    """A prog_array slot read from user space gives the program's id."""
    key = ct.c_uint32(slot)
    val = ct.c_uint32(0)
    rc = bcc.libbcc.lib.bpf_lookup_elem(map_fd, ct.byref(key), ct.byref(val))
    return val.value if rc == 0 else -1
