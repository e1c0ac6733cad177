"""A BCC BPF object made from a cache entry (object_cache.py) instead of a compile.

It is BCC's own class, so attaching, tables, perf buffers, trace_pipe and cleanup are
BCC's code; only what needs the compiled module is replaced: the maps are created from
their definitions, programs are loaded from the cached instructions with the new map fds
patched in (bcc_prog_load, the call BCC's own load ends in, minus the BTF the module
would add), and tables are made from the cached descriptions. BCC's table classes ask
the module three questions when they are made (type, flags, max entries): while such an
object lives, bcc.table's `lib` answers those for its maps and passes everything else to
libbcc.
"""

from __future__ import annotations

import atexit
import ctypes as ct
import errno
import json
import os
from typing import Any, Dict, List, Tuple

from runner.errors import KernelError
from runner.kernel import object_cache
from runner.kernel.object_cache import CompiledObject

# Map ids of cached objects start here, far above any module's table count, so the table
# library can tell them from a compiled module's.
_ID_BASE = 1 << 24


class _TableLib:
    """libbcc for bcc.table: the module questions about cached maps answered from their
    definitions (a compiled module's maps still go to libbcc)."""

    def __init__(self, real: Any):
        self._real = real
        self.answers: Dict[int, Tuple[int, int, int]] = {}  # map id -> type, flags, max

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._real, name)
        setattr(self, name, value)  # later lookups skip __getattr__
        return value

    def bpf_table_type_id(self, module: Any, map_id: int) -> int:
        known = self.answers.get(map_id) if module is None else None
        return known[0] if known else int(self._real.bpf_table_type_id(module, map_id))

    def bpf_table_flags_id(self, module: Any, map_id: int) -> int:
        known = self.answers.get(map_id) if module is None else None
        return known[1] if known else int(self._real.bpf_table_flags_id(module, map_id))

    def bpf_table_max_entries_id(self, module: Any, map_id: int) -> int:
        known = self.answers.get(map_id) if module is None else None
        return known[2] if known else int(self._real.bpf_table_max_entries_id(module, map_id))


def _table_lib(bcc: Any) -> _TableLib:
    import bcc.table as table_module

    if not isinstance(table_module.lib, _TableLib):
        table_module.lib = _TableLib(table_module.lib)
    return table_module.lib


_objects = 0


def cached_bpf(bcc: Any, obj: CompiledObject) -> Any:
    """A BPF object with the entry's maps created and nothing loaded or attached."""
    global _objects
    lib = object_cache._lib(bcc)
    fds: List[int] = []
    try:
        for name, mtype, key_size, value_size, max_entries, flags, _k, _v in obj.maps:
            fd = lib.bcc_create_map(mtype, name.encode(), key_size, value_size, max_entries,
                                    flags)
            if fd < 0:
                raise KernelError(f"cannot create map {name}: {os.strerror(ct.get_errno())}")
            fds.append(fd)
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    _objects += 1
    return _cached_class(bcc)(bcc, obj, fds, _ID_BASE * _objects)


_CLASSES: Dict[int, Any] = {}


def _cached_class(bcc: Any) -> Any:
    if id(bcc) in _CLASSES:
        return _CLASSES[id(bcc)]
    BPF = bcc.BPF

    class CachedBPF(BPF):  # type: ignore[misc, valid-type]
        def __init__(self, bcc: Any, obj: CompiledObject, fds: List[int], base: int):
            # What BPF.__init__ sets, minus the module: BCC's attach, table and cleanup
            # methods read these.
            self.kprobe_fds: Dict[Any, Any] = {}
            self.uprobe_fds: Dict[Any, Any] = {}
            self.tracepoint_fds: Dict[Any, Any] = {}
            self.raw_tracepoint_fds: Dict[Any, Any] = {}
            self.kfunc_entry_fds: Dict[Any, Any] = {}
            self.kfunc_exit_fds: Dict[Any, Any] = {}
            self.lsm_fds: Dict[Any, Any] = {}
            self.perf_buffers: Dict[Any, Any] = {}
            self.open_perf_events: Dict[Any, Any] = {}
            self._ringbuf_manager = None
            self.tracefile = None
            self.debug = 0
            self.funcs: Dict[bytes, Any] = {}
            self.tables: Dict[bytes, Any] = {}
            self.module = None
            self._bcc, self._obj, self._map_fds, self._base = bcc, obj, fds, base
            self._maps = {m[0].encode(): i for i, m in enumerate(obj.maps)}
            self._functions = {f[0].encode(): f for f in obj.functions}
            answers = _table_lib(bcc).answers
            for i, m in enumerate(obj.maps):
                answers[base + i] = (m[1], m[5], m[4])
            atexit.register(self.cleanup)

        def load_func(self, func_name: bytes, prog_type: int, device: Any = None,
                      attach_type: int = -1) -> Any:
            if func_name not in self.funcs:
                self.funcs[func_name] = BPF.Function(self, func_name,
                                                     _load(self, func_name, prog_type))
            return self.funcs[func_name]

        def get_table(self, name: bytes, keytype: Any = None, leaftype: Any = None,
                      reducer: Any = None) -> Any:
            return _table(self, BPF, name, keytype, leaftype, reducer)

        def close(self) -> None:
            super().close()
            fds, self._map_fds = self._map_fds, []
            for fd in fds:
                os.close(fd)
            answers = _table_lib(self._bcc).answers
            for i in range(len(self._obj.maps)):
                answers.pop(self._base + i, None)

    _CLASSES[id(bcc)] = CachedBPF
    return CachedBPF


def _load(bpf: Any, func_name: bytes, prog_type: int) -> int:
    """The fd of the cached program loaded with this object's map fds patched in."""
    if func_name not in bpf._functions:
        raise Exception(f"Unknown program {func_name!r}")  # BCC's words and type
    _name, insns, fixups = bpf._functions[func_name]
    code = object_cache.patched(bytes.fromhex(insns), fixups, bpf._map_fds)
    buf = (ct.c_char * len(code)).from_buffer(code)
    lib = object_cache._lib(bpf._bcc)
    fd = lib.bcc_prog_load(prog_type, func_name, ct.addressof(buf), len(code),
                           bpf._obj.license.encode(), bpf._obj.kern_version, 0, None, 0)
    if fd < 0:
        err = ct.get_errno()
        if err == errno.EPERM:
            raise Exception("Need super-user privileges to run")
        raise Exception(f"Failed to load BPF program {func_name!r}: {os.strerror(err)}")
    return int(fd)


def _table(bpf: Any, bpf_class: Any, name: bytes, keytype: Any, leaftype: Any,
           reducer: Any) -> Any:
    """BCC's table object for a cached map, its types from BCC's own descriptions."""
    if isinstance(name, str):  # BCC's own get_table takes either
        name = name.encode()
    if name not in bpf._maps:
        raise KeyError(name)
    i = bpf._maps[name]
    m = bpf._obj.maps[i]
    keytype = keytype or bpf_class._decode_table_type(json.loads(m[6]))
    leaftype = leaftype or bpf_class._decode_table_type(json.loads(m[7]))
    return bpf._bcc.table.Table(bpf, bpf._base + i, bpf._map_fds[i], keytype, leaftype,
                                name, reducer=reducer)
