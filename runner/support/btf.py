"""Struct offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux).

The kernel headers BCC compiles against may belong to another kernel (here Debian's 6.1
headers on a 6.18 kernel), so `task->real_parent->tgid` written in C would use 6.1's
offsets and read garbage. BTF is the running kernel's own description of its types:
offsets taken from it are right for this kernel. This module only parses bytes; it knows
nothing of specs. The format is the kernel's Documentation/bpf/btf.rst.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, List, Optional, Tuple

VMLINUX = "/sys/kernel/btf/vmlinux"

# BTF kinds (include/uapi/linux/btf.h) and the bytes each adds after its 12-byte header.
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
_EXTRA_FIXED = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_EXTRA_PER_ITEM = {STRUCT: 12, UNION: 12, ENUM: 8, FUNC_PROTO: 8, DATASEC: 12, ENUM64: 12}
_QUALIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)


class BtfError(ValueError):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    type: int
    bit_offset: int
    bitfield: int  # bits; 0 when not a bitfield


@dataclass(frozen=True)
class Type:
    kind: int
    name: str
    size_or_type: int  # size for INT, STRUCT, UNION, ENUM; the referred type otherwise
    members: Tuple[Member, ...] = ()
    signed: bool = False  # INT: signed encoding; ENUM: kind_flag says signed


class Btf:
    """A kernel's types, each parsed when first asked for: the kernel has about 130,000
    and a spec reads a handful, so parsing them all (265 ms) would be most of a first
    run's check. Only the walk that finds where each type starts, and the struct names,
    is done up front."""

    def __init__(self, data: bytes, strings: bytes, starts: List[int],
                 structs: Dict[str, int], enums: List[int]):
        self._data, self._strings, self._starts = data, strings, starts
        self.structs = structs  # struct name -> type id (the first complete one)
        self.enum_ids = enums  # every ENUM and ENUM64, named or not, in id order
        self._parsed: Dict[int, Type] = {0: Type(0, "void", 0)}

    def type(self, type_id: int) -> Type:
        if type_id not in self._parsed:
            if not 0 < type_id < len(self._starts):
                raise BtfError(f"type id {type_id} is out of range")
            self._parsed[type_id] = _type_at(self._data, self._starts[type_id], self._name)
        return self._parsed[type_id]

    def _name(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode("utf-8", "replace")


_HEADER = struct.Struct("<3I")


def parse(data: bytes) -> Btf:
    if len(data) < 24 or struct.unpack_from("<H", data)[0] != 0xEB9F:
        raise BtfError("not BTF data (bad magic)")
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<5I", data, 4)
    strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
    starts: List[int] = [0]  # index = type id; 0 is void
    structs: Dict[str, int] = {}
    enums: List[int] = []
    btf = Btf(data, strings, starts, structs, enums)
    pos, end = hdr_len + type_off, hdr_len + type_off + type_len
    while pos < end:
        name_off, info, _size_or_type = _HEADER.unpack_from(data, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        starts.append(pos)
        if kind == STRUCT and name_off:
            structs.setdefault(btf._name(name_off), len(starts) - 1)
        elif kind in (ENUM, ENUM64):
            enums.append(len(starts) - 1)
        pos += 12 + _EXTRA_FIXED.get(kind, 0) + _EXTRA_PER_ITEM.get(kind, 0) * vlen
    return btf


def _type_at(data: bytes, pos: int, name: Callable[[int], str]) -> Type:
    name_off, info, size_or_type = _HEADER.unpack_from(data, pos)
    kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
    pos += 12
    members: Tuple[Member, ...] = ()
    signed = False
    if kind in (STRUCT, UNION):
        members = tuple(_member(data, pos + 12 * i, kflag, name) for i in range(vlen))
    elif kind == INT:
        signed = bool((struct.unpack_from("<I", data, pos)[0] >> 24) & 1)
    elif kind in (ENUM, ENUM64):
        signed = bool(kflag)
    return Type(kind, name(name_off), size_or_type, members, signed)


def _member(data: bytes, pos: int, kflag: int, name: Callable[[int], str]) -> Member:
    name_off, type_id, offset = _HEADER.unpack_from(data, pos)
    if kflag:
        return Member(name(name_off), type_id, offset & 0xFFFFFF, offset >> 24)
    return Member(name(name_off), type_id, offset, 0)


def enum_values(btf: Btf, type_id: int) -> Tuple[Tuple[str, int], ...]:
    """An ENUM's or ENUM64's constants and their values, in declaration order: 4-byte
    values (ENUM) or two 4-byte halves, low first (ENUM64), signed when the type's
    kind_flag says so."""
    pos = btf._starts[type_id]
    _name_off, info, _size = _HEADER.unpack_from(btf._data, pos)
    kind, vlen, signed = (info >> 24) & 0x1F, info & 0xFFFF, bool(info >> 31)
    out = []
    for i in range(vlen):
        if kind == ENUM:
            name_off, value = struct.unpack_from("<Ii" if signed else "<II", btf._data,
                                                 pos + 12 + 8 * i)
        else:
            name_off, lo, hi = struct.unpack_from("<III", btf._data, pos + 12 + 12 * i)
            value = hi << 32 | lo
            if signed and value >= 2**63:
                value -= 2**64
        out.append((btf._name(name_off), value))
    return tuple(out)


@lru_cache(maxsize=2)
def load(path: str = VMLINUX) -> Btf:
    try:
        with open(path, "rb") as f:
            return parse(f.read())
    except OSError as e:
        raise BtfError(f"cannot read {path}: {e.strerror}") from None


def strip(btf: Btf, type_id: int) -> Type:
    """The type behind typedefs and qualifiers."""
    t = btf.type(type_id)
    while t.kind in _QUALIFIERS:
        t = btf.type(t.size_or_type)
    return t


def find_member(btf: Btf, t: Type, name: str) -> Optional[Tuple[int, Member]]:
    """(byte offset, member) of `name` in struct/union `t`, looking inside anonymous
    structs and unions as C does."""
    for m in t.members:
        if m.name == name:
            return m.bit_offset // 8, m
        inner = strip(btf, m.type)
        if not m.name and inner.kind in (STRUCT, UNION):
            found = find_member(btf, inner, name)
            if found:
                return m.bit_offset // 8 + found[0], found[1]
    return None


@dataclass(frozen=True)
class Path:
    """Where a chain of members leads: `offsets` as runner/model/expr.py TaskRead wants them
    (each but the last a pointer to follow) and the integer read at the end."""

    offsets: Tuple[int, ...]
    size: int
    signed: bool


def resolve(btf: Btf, struct_name: str, members: List[str]) -> Path:
    """Follow `members` from `struct struct_name`, through pointers and embedded structs."""
    if struct_name not in btf.structs:
        raise BtfError(f"the kernel's BTF has no struct {struct_name}")
    t = btf.type(btf.structs[struct_name])
    offsets: List[int] = [0]
    for i, m_name in enumerate(members):
        if t.kind == PTR:  # a pointer member before this one: follow it
            t = strip(btf, t.size_or_type)
            offsets.append(0)
        if t.kind not in (STRUCT, UNION):
            raise BtfError(f"'{'.'.join(members[:i])}' is not a struct; it has no "
                           f"member '{m_name}'")
        found = find_member(btf, t, m_name)
        if found is None:
            raise BtfError(f"struct {t.name or '(anonymous)'} has no member '{m_name}'")
        off, member = found
        if member.bitfield:
            raise BtfError(f"'{m_name}' is a bitfield, which cannot be read by offset")
        offsets[-1] += off
        t = strip(btf, member.type)
    if t.kind == PTR:
        return Path(tuple(offsets), 8, False)
    if t.kind in (INT, ENUM, ENUM64) and t.size_or_type in (1, 2, 4, 8):
        return Path(tuple(offsets), t.size_or_type, t.signed)
    raise BtfError(f"'{'.'.join(members)}' is not an integer or a pointer")
