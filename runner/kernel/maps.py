"""Reading maps from user space: the in-kernel loss counters, map dumps and stacks."""

from __future__ import annotations

import ctypes as ct
import errno
import itertools
import os
from typing import Any, Callable, Iterator, List, Optional, Tuple

from runner.errors import KernelError
from runner.kinds.maps import HASH, MAP_KINDS
from runner.model.spec import Drop, Map
from runner.model.stacks import StackMap

# Map kinds whose lookups give one value per CPU (the runtime reduces them): a column of
# the map-type table, so a new per-CPU kind is read right without a change here.
PER_CPU_KINDS = frozenset(k.name for k in MAP_KINDS.values() if k.per_cpu)
CHECK_EVERY = 1024  # entries between two looks at should_stop


class DumpInterrupted(Exception):
    """should_stop said yes in the middle of reading a map."""


def drop_counts(bpf: Any, drops: Tuple[Drop, ...]) -> List[int]:
    """Each loss counter summed over the CPUs (er_drops is a per-CPU array)."""
    if not drops:
        return []
    table = bpf[b"er_drops"]
    return [sum(int(v) for v in table.getvalue(table.Key(d.index))) for d in drops]


def stack_addresses(bpf: Any, m: StackMap, stack_id: int) -> Optional[List[int]]:
    """The addresses of stack `stack_id`, innermost first; None if the map has no such id.
    One lookup each: stack maps have no batch operations."""
    table = bpf[m.name.encode()]
    try:
        leaf = table[table.Key(stack_id)]
    except KeyError:
        return None
    out = []
    for address in leaf.ip:  # a stack shorter than the depth ends with zeros
        if not address:
            break
        out.append(int(address))
    return out


def sent_count(bpf: Any) -> int:
    """Lines the probes printed to trace_pipe (er_sent, a per-CPU array), over all CPUs."""
    table = bpf[b"er_sent"]
    return sum(int(v) for v in table.getvalue(table.Key(0)))


def map_items(bpf: Any, m: Map, should_stop: Callable[[], bool]
              ) -> Iterator[Tuple[bytes, List[bytes]]]:
    """(key bytes, [value bytes per CPU, or one]) for every entry, in map order."""
    table = bpf[m.name.encode()]
    kind = MAP_KINDS.lookup(m.kind)
    if kind.family == HASH and hasattr(table, "map_fd"):
        batches = _hash_batches(table, kind.per_cpu)
        try:
            first = next(batches)
        except _NoBatch:  # before 5.6: one entry at a time
            pass
        else:
            read = 0
            for rows in itertools.chain([first], batches):
                if read and should_stop():
                    raise DumpInterrupted(f"map {m.name}: stopped after {read} entries")
                yield from rows
                read += len(rows)
            return
    yield from _one_by_one(table, m, kind.per_cpu, should_stop)


class _NoBatch(Exception):
    """The kernel refused a batch lookup (before 5.6)."""


def _hash_batches(table: Any, per_cpu: bool) -> Iterator[List[Tuple[bytes, List[bytes]]]]:
    """A hash map read CHECK_EVERY entries per system call (BPF_MAP_LOOKUP_BATCH) instead of
    two calls per entry: most of the time of a dump of a million keys. The batch token
    is a bucket index, so a key deleted meanwhile (an eviction) does not restart the walk.
    _NoBatch from the first batch when the kernel has no batch lookup."""
    lib = _libbcc()
    ksize, vsize = ct.sizeof(table.Key), ct.sizeof(table.Leaf)
    # Per CPU: each value 8-aligned in the buffer, of which the value's own bytes are kept
    # (as map_items gives them one entry at a time).
    stride = vsize // table.total_cpu if per_cpu else vsize
    size = ct.sizeof(table.sLeaf) if per_cpu else vsize
    chunk = CHECK_EVERY
    token_in, token_out = ct.c_uint32(0), ct.c_uint32(0)
    started = False
    while True:
        keys, values = (table.Key * chunk)(), (table.Leaf * chunk)()
        count = ct.c_uint32(chunk)
        res = lib.bpf_lookup_batch(table.map_fd, ct.byref(token_in) if started else None,
                                   ct.byref(token_out), keys, values, ct.byref(count))
        err = ct.get_errno() if res != 0 else 0
        if err == errno.ENOSPC and count.value == 0:  # a bucket holds more than chunk keys
            chunk *= 2
            continue
        if res != 0 and err != errno.ENOENT:
            if not started:
                raise _NoBatch(os.strerror(err))
            raise KernelError(f"reading a map failed: {os.strerror(err)}")
        n = count.value
        kb, vb = ct.string_at(keys, n * ksize), ct.string_at(values, n * vsize)
        yield [(kb[i * ksize:(i + 1) * ksize],
                [vb[j:j + size] for j in range(i * vsize, (i + 1) * vsize, stride)])
               for i in range(n)]
        if res != 0:  # ENOENT: that was the last batch
            return
        token_in.value, started = token_out.value, True


def _one_by_one(table: Any, m: Map, per_cpu: bool, should_stop: Callable[[], bool]
                ) -> Iterator[Tuple[bytes, List[bytes]]]:
    for i, (k, v) in enumerate(table.iteritems()):
        if i % CHECK_EVERY == 0 and i and should_stop():
            raise DumpInterrupted(f"map {m.name}: stopped after {i} entries")
        values = [_leaf_bytes(table, x) for x in v] if per_cpu else [bytes(v)]
        yield bytes(k), values


def _leaf_bytes(table: Any, value: Any) -> bytes:
    """One CPU's value as bytes. BCC's per-CPU array of a scalar gives plain ints, and
    bytes(int) would be that many zero bytes (so every per-CPU counter dumped as 0)."""
    return bytes(table.sLeaf(value)) if isinstance(value, int) else bytes(value)


def delete_items(bpf: Any, m: Map, keys: List[bytes]) -> List[Optional[List[bytes]]]:
    """Delete each key; per key, what it held when it was deleted (as map_items gives it),
    or None when it was gone already or the kernel cannot say.

    Lookup-and-delete is one step in the kernel (hash maps since 5.14), so an update that
    lands between the caller's read and the delete is still seen here; before 5.14 the
    kernel refuses it for hash maps and the key is deleted without its last value."""
    table = bpf[m.name.encode()]
    per_cpu = MAP_KINDS.lookup(m.kind).per_cpu
    lib = _libbcc()
    out: List[Optional[List[bytes]]] = []
    for kb in keys:
        key, leaf = table.Key.from_buffer_copy(kb), table.Leaf()
        if lib.bpf_lookup_and_delete(table.map_fd, ct.byref(key), ct.byref(leaf)) == 0:
            out.append([_leaf_bytes(table, x) for x in leaf] if per_cpu else [bytes(leaf)])
        else:
            lib.bpf_delete_elem(table.map_fd, ct.byref(key))  # ENOENT: gone; fine
            out.append(None)
    return out


def _libbcc() -> Any:
    from runner.kernel.bcc import import_bcc

    return import_bcc().libbcc.lib


class Maps:
    """A loaded spec's maps as the runtime reads them (Kernel.maps)."""

    def __init__(self, bpf: Any, drops: Tuple[Drop, ...]):
        self.bpf = bpf
        self.drops = drops

    def map_items(self, m: Map, should_stop: Callable[[], bool] = lambda: False
                  ) -> Iterator[Tuple[bytes, List[bytes]]]:
        return map_items(self.bpf, m, should_stop)

    def delete_items(self, m: Map, keys: List[bytes]) -> List[Optional[List[bytes]]]:
        return delete_items(self.bpf, m, keys)

    def drop_counts(self) -> List[int]:
        return drop_counts(self.bpf, self.drops)

    def stack(self, m: StackMap, stack_id: int) -> Optional[List[int]]:
        return stack_addresses(self.bpf, m, stack_id)

    def sent_count(self) -> int:
        return sent_count(self.bpf)
