"""Reads of a map whose cost does not grow with its size in Python: looking up given keys,
and counting the entries. A scrape of /metrics uses them once a metric has all the label
sets it may export: it looks up those keys instead of walking a million entries, and counts
the rest in batches of the kernel's (BPF_MAP_LOOKUP_BATCH) without a Python step each."""

from __future__ import annotations

import ctypes as ct
import errno
from typing import Any, Callable, Dict, Iterable, Iterator, List, Tuple

from runner.kernel.maps import CHECK_EVERY, DumpInterrupted, map_items
from runner.kinds.maps import MAP_KINDS
from runner.model.spec import Map

BATCH = 4096  # entries per BPF_MAP_LOOKUP_BATCH call: 2 MB of buffers at most for a scrape


def lookup_many(bpf: Any, m: Map, keys: Iterable[bytes]) -> Dict[bytes, List[bytes]]:
    """{key: [value bytes per CPU, or one]} for those of `keys` the map holds: one system
    call a key into buffers made once (BCC's table lookup makes a few ctypes objects a
    key, the most of a scrape that looks up a histogram's every bucket)."""
    from bcc.libbcc import lib  # only runner/kernel imports bcc

    table = bpf[m.name.encode()]
    key_size, value_size, cpus, leaf = _sizes(table, MAP_KINDS.lookup(m.kind).per_cpu)
    slot = value_size // cpus
    value = ct.create_string_buffer(value_size)
    lookup, fd = lib.bpf_lookup_elem, table.map_fd
    out: Dict[bytes, List[bytes]] = {}
    for kb in keys:
        if len(kb) != key_size:
            raise ValueError(f"map {m.name}: a key of {len(kb)} bytes, not {key_size}")
        res = lookup(fd, kb, value)  # the bytes' own buffer: the kernel only reads it
        if res < 0:
            if res == -errno.ENOENT:  # libbpf returns -errno (and sets errno)
                continue
            raise OSError(-res, f"map {m.name}: BPF_MAP_LOOKUP_ELEM")
        raw = value.raw
        out[kb] = [raw[c * slot:c * slot + leaf] for c in range(cpus)]
    return out


def count_entries(bpf: Any, m: Map, should_stop: Callable[[], bool] = lambda: False) -> int:
    """How many entries the map holds now (entries come and go meanwhile: about)."""
    table = bpf[m.name.encode()]
    try:
        return _count_batched(bpf, table, MAP_KINDS.lookup(m.kind).per_cpu)
    except OSError:  # no batch operations for this map or kernel: one step per key
        n = 0
        for n, _ in enumerate(table.keys(), 1):
            if n % CHECK_EVERY == 0 and should_stop():
                raise DumpInterrupted(f"map {m.name}: stopped after {n} keys") from None
        return n


def items_batched(bpf: Any, m: Map) -> Iterator[Tuple[bytes, List[bytes]]]:
    """What maps.map_items yields, read BATCH entries per system call instead of two calls
    and a few ctypes objects per entry (a tenth of the cost); map_items where the kernel
    has no batch operations for the map."""
    table = bpf[m.name.encode()]
    per_cpu = MAP_KINDS.lookup(m.kind).per_cpu
    batches = _batches(table, per_cpu)
    try:
        first = next(batches)
    except StopIteration:
        return
    except OSError:
        yield from map_items(bpf, m, lambda: False)
        return
    for keys, values, n in _chain(first, batches):
        yield from _rows(table, per_cpu, keys, values, n)


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _rows(table: Any, per_cpu: bool, keys: bytes, values: bytes, n: int
          ) -> Iterator[Tuple[bytes, List[bytes]]]:
    key_size, value_size, cpus, leaf = _sizes(table, per_cpu)
    slot = value_size // cpus
    for i in range(n):
        kb = keys[i * key_size:(i + 1) * key_size]
        v = values[i * value_size:(i + 1) * value_size]
        yield kb, [v[c * slot:c * slot + leaf] for c in range(cpus)]


def _sizes(table: Any, per_cpu: bool) -> Tuple[int, int, int, int]:
    """Key size, value size in a batch (all CPUs'), CPUs, one CPU's value size."""
    from bcc.utils import get_possible_cpus  # only runner/kernel imports bcc

    key_size = ct.sizeof(table.Key)
    if not per_cpu:
        leaf = ct.sizeof(table.Leaf)
        return key_size, leaf, 1, leaf
    leaf = ct.sizeof(table.sLeaf)
    cpus = len(get_possible_cpus())
    return key_size, (leaf + 7) // 8 * 8 * cpus, cpus, leaf


def _batches(table: Any, per_cpu: bool) -> Iterator[Tuple[bytes, bytes, int]]:
    """(keys, values, how many) per BPF_MAP_LOOKUP_BATCH call, to the end of the map."""
    from bcc.libbcc import lib  # only runner/kernel imports bcc

    key_size, value_size, _, _ = _sizes(table, per_cpu)
    keys = ct.create_string_buffer(BATCH * key_size)
    values = ct.create_string_buffer(BATCH * value_size)
    token = ct.c_uint32(0)  # a hash map's batch token: the next bucket's index
    count = ct.c_uint32(0)
    first = True
    while True:
        count.value = BATCH
        res = lib.bpf_lookup_batch(table.map_fd, None if first else ct.byref(token),
                                   ct.byref(token), keys, values, ct.byref(count))
        err = -res if res < 0 else ct.get_errno()
        if count.value:
            yield keys.raw[:count.value * key_size], values.raw[:count.value * value_size], \
                count.value
        if res == 0:
            first = False
            continue
        if err == errno.ENOENT:  # the last batch
            return
        raise OSError(err, "BPF_MAP_LOOKUP_BATCH")


def _count_batched(bpf: Any, table: Any, per_cpu: bool) -> int:
    return sum(n for _, _, n in _batches(table, per_cpu))
