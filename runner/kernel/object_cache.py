"""A cache of compiled programs, so a run of an unchanged spec on an unchanged machine
does not run clang (about 80% of BCC's start-up).

After a compile, BCC's module holds each function's instructions as they would be loaded
(map references already rewritten to the fds of the maps it created) and each map's
definition. An entry keeps exactly that: the instructions, where in them each map fd
sits (BPF_LD_IMM64 with src_reg BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE), and the map
definitions with BCC's descriptions of their key and value types. A hit creates the maps
again, patches their new fds in and loads the instructions (cached_bpf.py): nothing is
compiled.

The key covers everything the instructions depend on: the rendered C (which the spec's
content and name decide), ebpf-run's own code, the kernel (release and build), the
architecture and possible CPUs (a perf event array has one slot per CPU), the BCC version
and the exact libbcc, clang and LLVM libraries loaded, BCC_* variables, and the headers
BCC compiles against (/lib/modules/RELEASE/build and source, version.h, autoconf.h).
Entries are stored by runner/support/cache.py, with its rules (JSON with a digest, no
links followed, owner and mode checked on the open file); EBPF_RUN_NO_CACHE=1 turns it off
with the rest of the cache. A program that needs what only BCC's module knows (BTF, for
fentry/fexit or LSM programs) is not cached.
"""

from __future__ import annotations

import ctypes as ct
import os
import struct
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from runner.support import cache

# (name, map type, key size, value size, max entries, flags, key type, value type): the
# last two are BCC's JSON descriptions, which its table classes decode into ctypes.
MapDef = Tuple[str, int, int, int, int, int, str, str]
# (name, instructions as hex, ((instruction index, map index), ...))
FunctionDef = Tuple[str, str, Tuple[Tuple[int, int], ...]]

_LD_IMM64 = 0x18
_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE = 1, 2
_INSN = struct.Struct("=BBhi")
# Types a plain map create cannot make again: maps of maps (an inner map fd), queues and
# stacks (BCC's own table path differs), and a struct_ops map.
_UNCACHED_MAP_TYPES = {12, 13, 22, 23, 26}
# Function names BCC gives programs whose load needs its module's BTF, and the macros of
# BCC's that declare such programs in the C.
_NEEDS_BTF = (b"kfunc__", b"kretfunc__", b"lsm__", b"kmod_ret__")
_NEEDS_BTF_MACROS = ("KFUNC_PROBE(", "KRETFUNC_PROBE(", "LSM_PROBE(", "KMOD_RET(")


@dataclass(frozen=True)
class CompiledObject:
    license: str
    kern_version: int
    maps: Tuple[MapDef, ...]
    functions: Tuple[FunctionDef, ...]


def enabled() -> bool:
    return os.environ.get("EBPF_RUN_NO_CACHE") != "1"


def key(bcc: Any, c_source: str) -> str:
    parts = [c_source, str(os.uname()), getattr(bcc, "__version__", "?"), _libraries(),
             _read("/sys/devices/system/cpu/possible"), _headers(),
             repr(sorted((k, v) for k, v in os.environ.items() if k.startswith("BCC_")))]
    blob = "\0".join(parts).encode()
    return cache.key("compiled program", blob, os.uname().machine)


def load(k: str) -> Optional[CompiledObject]:
    return cache.load(k, CompiledObject)


def store(k: str, obj: CompiledObject) -> None:
    cache.store(k, obj)


def needs_module(c_source: str) -> bool:
    """Whether a program of this C could not be kept as instructions (capture would say
    None): known before compiling, so no compile is made in vain."""
    return any(m in c_source for m in _NEEDS_BTF_MACROS)


# -- what a compile made --------------------------------------------------------------------


def capture(bcc: Any, bpf: Any) -> Optional[CompiledObject]:
    """The compiled program in BCC's module, or None if it cannot be loaded from a cache."""
    lib = _lib(bcc)
    module = bpf.module
    maps: List[MapDef] = []
    index_of_fd: Dict[int, int] = {}
    for i in range(lib.bpf_num_tables(module)):
        mtype = lib.bpf_table_type_id(module, i)
        if mtype in _UNCACHED_MAP_TYPES:
            return None
        index_of_fd[lib.bpf_table_fd_id(module, i)] = i
        maps.append((lib.bpf_table_name(module, i).decode(), mtype,
                     lib.bpf_table_key_size_id(module, i), lib.bpf_table_leaf_size_id(module, i),
                     lib.bpf_table_max_entries_id(module, i), lib.bpf_table_flags_id(module, i),
                     lib.bpf_table_key_desc_id(module, i).decode(),
                     lib.bpf_table_leaf_desc_id(module, i).decode()))
    functions: List[FunctionDef] = []
    for i in range(lib.bpf_num_functions(module)):
        name = lib.bpf_function_name(module, i)
        if name.startswith(_NEEDS_BTF):
            return None
        insns = ct.string_at(lib.bpf_function_start(module, name),
                             lib.bpf_function_size(module, name))
        fixups = map_references(insns, index_of_fd)
        if fixups is None:
            return None
        functions.append((name.decode(), insns.hex(), fixups))
    return CompiledObject(lib.bpf_module_license(module).decode(),
                          lib.bpf_module_kern_version(module), tuple(maps), tuple(functions))


def map_references(insns: bytes, index_of_fd: Dict[int, int]
                   ) -> Optional[Tuple[Tuple[int, int], ...]]:
    """(instruction index, map index) of every map fd in the instructions; None if one
    names no map of the module (it could not be patched on a hit)."""
    found = []
    for i in range(len(insns) // 8):
        code, regs, _off, imm = _INSN.unpack_from(insns, i * 8)
        if code != _LD_IMM64 or (regs >> 4) not in (_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE):
            continue
        if imm not in index_of_fd:
            return None
        found.append((i, index_of_fd[imm]))
    return tuple(found)


def patched(insns: bytes, fixups: Tuple[Tuple[int, int], ...], fds: List[int]) -> bytearray:
    out = bytearray(insns)
    for insn, map_index in fixups:
        struct.pack_into("=i", out, insn * 8 + 4, fds[map_index])
    return out


_LIB: Dict[str, Any] = {}


def _lib(bcc: Any) -> Any:
    """libbcc with the signatures of the module queries used here (BCC's Python binding
    declares only some of them; a private handle leaves BCC's own declarations alone)."""
    if "lib" not in _LIB:
        lib = ct.CDLL(bcc.libbcc.lib._name, use_errno=True)
        for name in ("bpf_table_name", "bpf_table_key_desc_id", "bpf_table_leaf_desc_id",
                     "bpf_function_name", "bpf_module_license"):
            getattr(lib, name).restype = ct.c_char_p
        for name in ("bpf_table_name", "bpf_table_key_desc_id", "bpf_table_leaf_desc_id",
                     "bpf_table_fd_id", "bpf_table_type_id", "bpf_table_key_size_id",
                     "bpf_table_leaf_size_id", "bpf_table_max_entries_id",
                     "bpf_table_flags_id", "bpf_function_name"):
            getattr(lib, name).argtypes = [ct.c_void_p, ct.c_ulonglong]
        for name in ("bpf_function_start", "bpf_function_size"):
            getattr(lib, name).argtypes = [ct.c_void_p, ct.c_char_p]
        lib.bpf_function_start.restype = ct.c_void_p
        lib.bpf_function_size.restype = ct.c_size_t
        lib.bpf_num_tables.argtypes = lib.bpf_num_functions.argtypes = [ct.c_void_p]
        lib.bpf_num_tables.restype = lib.bpf_num_functions.restype = ct.c_size_t
        lib.bpf_module_license.argtypes = lib.bpf_module_kern_version.argtypes = [ct.c_void_p]
        lib.bpf_module_kern_version.restype = ct.c_uint
        lib.bcc_create_map.argtypes = [ct.c_int, ct.c_char_p, ct.c_int, ct.c_int, ct.c_int,
                                       ct.c_int]
        lib.bcc_prog_load.argtypes = [ct.c_int, ct.c_char_p, ct.c_void_p, ct.c_int,
                                      ct.c_char_p, ct.c_uint, ct.c_int, ct.c_char_p, ct.c_uint]
        _LIB["lib"] = lib
    return _LIB["lib"]


# -- the key's parts -------------------------------------------------------------------------


def _libraries() -> str:
    """Each shared library of BCC's compiler loaded in this process: path, size, mtime."""
    seen = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.rstrip("\n").partition("/")[2]
            if path and any(n in path for n in ("libbcc", "LLVM", "clang")):
                seen.add("/" + path)
    return repr(sorted(_stat(p) for p in seen))


def _headers() -> str:
    base = f"/lib/modules/{os.uname().release}"
    parts = [_stat(os.path.realpath(f"{base}/build")),
             _stat(os.path.realpath(f"{base}/source")),
             _read(f"{base}/build/include/generated/uapi/linux/version.h"),
             _stat(f"{base}/build/include/generated/autoconf.h"),
             str(os.path.exists("/sys/kernel/kheaders.tar.xz"))]
    return repr(parts)


def _stat(path: str) -> Tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1, -1)
    return (path, st.st_size, st.st_mtime_ns, st.st_ino)


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(1 << 16).decode("utf-8", "replace")
    except OSError:
        return ""
