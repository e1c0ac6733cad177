"""Reads of a map whose cost does not grow with its size in Python: looking up given keys,
and counting the entries. A scrape of /metrics uses them once a metric has all the label
sets it may export: it looks up those keys instead of walking a million entries, and counts
the rest in batches of the kernel's (BPF_MAP_LOOKUP_BATCH) without a Python step each."""

from __future__ import annotations

import ctypes as ct
import errno
from typing import Any, Callable, Dict, Iterable, List

from runner.kernel.maps import CHECK_EVERY, DumpInterrupted, _leaf_bytes
from runner.kinds.maps import MAP_KINDS
from runner.model.spec import Map

BATCH = 4096  # entries per BPF_MAP_LOOKUP_BATCH call: 2 MB of buffers at most for a scrape


def lookup_many(bpf: Any, m: Map, keys: Iterable[bytes]) -> Dict[bytes, List[bytes]]:
    """{key: [value bytes per CPU, or one]} for those of `keys` the map holds."""
    table = bpf[m.name.encode()]
    per_cpu = MAP_KINDS.lookup(m.kind).per_cpu
    out: Dict[bytes, List[bytes]] = {}
    for kb in keys:
        key = table.Key.from_buffer_copy(kb)
        try:
            v = table.getvalue(key) if per_cpu else table[key]
        except KeyError:
            continue
        out[kb] = [_leaf_bytes(table, x) for x in v] if per_cpu else [bytes(v)]
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


def _count_batched(bpf: Any, table: Any, per_cpu: bool) -> int:
    from bcc.libbcc import lib  # only runner/kernel imports bcc
    from bcc.utils import get_possible_cpus

    key_size = ct.sizeof(table.Key)
    leaf = ct.sizeof(table.sLeaf) if per_cpu else ct.sizeof(table.Leaf)
    value_size = (leaf + 7) // 8 * 8 * len(get_possible_cpus()) if per_cpu else leaf
    keys = ct.create_string_buffer(BATCH * key_size)
    values = ct.create_string_buffer(BATCH * value_size)
    token = ct.c_uint32(0)  # a hash map's batch token: the next bucket's index
    count = ct.c_uint32(0)
    total, first = 0, True
    while True:
        count.value = BATCH
        res = lib.bpf_lookup_batch(table.map_fd, None if first else ct.byref(token),
                                   ct.byref(token), keys, values, ct.byref(count))
        err = -res if res < 0 else ct.get_errno()
        total += count.value
        if res == 0:
            first = False
            continue
        if err == errno.ENOENT:  # the last batch
            return total
        raise OSError(err, "BPF_MAP_LOOKUP_BATCH")
