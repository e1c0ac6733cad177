"""The one table of spec types, and struct layout computed from it.

Every size, alignment and offset used anywhere in ebpf-run comes from here:
templates print these numbers, they never compute them. The rules are the C
ones for the BPF target (and for x86_64/arm64 user space, which agree): a
field sits at the next multiple of its alignment, a struct is aligned to its
most aligned field, and its size is rounded up to that alignment. Padding is
made explicit as named members so both sides spell it out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple


@dataclass(frozen=True)
class Scalar:
    """A row of the type table."""

    name: str  # spelling in specs
    c: str  # spelling in BPF C (BCC provides these typedefs)
    ctypes: str  # spelling in the generated Python
    size: int
    signed: bool

    @property
    def align(self) -> int:
        return self.size

    @property
    def bits(self) -> int:
        return self.size * 8

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - (1 if self.signed else 0))) - 1


SCALARS: Dict[str, Scalar] = {
    s.name: s
    for s in (
        Scalar("u8", "u8", "ctypes.c_uint8", 1, False),
        Scalar("u16", "u16", "ctypes.c_uint16", 2, False),
        Scalar("u32", "u32", "ctypes.c_uint32", 4, False),
        Scalar("u64", "u64", "ctypes.c_uint64", 8, False),
        Scalar("s8", "s8", "ctypes.c_int8", 1, True),
        Scalar("s16", "s16", "ctypes.c_int16", 2, True),
        Scalar("s32", "s32", "ctypes.c_int32", 4, True),
        Scalar("s64", "s64", "ctypes.c_int64", 8, True),
    )
}
# (size in bytes, signed) -> the type's name: what a tracepoint's or BTF's integer is here.
SCALAR_BY_SIZE = {(s.size, s.signed): s.name for s in SCALARS.values()}
CHAR = Scalar("char", "char", "ctypes.c_char", 1, True)


@dataclass(frozen=True)
class TypeRef:
    """A parsed field type: a scalar, char[N], an integer array, or a struct."""

    base: str  # a SCALARS key, "char", a STACKS key, or a struct name
    count: Optional[int] = None  # array length, None for a single value
    depth: int = 0  # a stack's depth limit (1..MAX_STACK_DEPTH); 0 for every other type

    @property
    def is_string(self) -> bool:
        return self.base == "char"

    @property
    def is_stack(self) -> bool:
        return self.base in STACKS

    @property
    def is_struct(self) -> bool:
        return self.base != "char" and self.base not in SCALARS and not self.is_stack

    @property
    def scalar(self) -> Optional[Scalar]:
        """The C and ctypes type a field holds; a stack field holds its stack id."""
        if self.is_stack:
            return STACK_ID
        return CHAR if self.is_string else SCALARS.get(self.base)

    def __str__(self) -> str:
        if self.is_stack:
            return self.base if self.depth == MAX_STACK_DEPTH else f"{self.base}[{self.depth}]"
        return f"{self.base}[{self.count}]" if self.count is not None else self.base


# Stack types: a field holding the id bpf_get_stackid returns (an s32: negative when no
# stack was taken) for a stack of at most `depth` frames, kept in a stack-trace map. The
# kernel's own limit (sysctl kernel.perf_event_max_stack) is 127 by default, and 127 is
# bpftrace's default depth.
STACKS = {"kstack": "kernel", "ustack": "user"}
MAX_STACK_DEPTH = 127
STACK_ID = SCALARS["s32"]


_TYPE_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\s*([0-9]+)\s*\])?\s*$")


class TypeSyntaxError(ValueError):
    pass


def parse_type(text: str) -> TypeRef:
    """Parse `u32`, `char[16]`, `u64[4]` or a struct name; refuse pointers with a reason."""
    if "*" in text:
        raise TypeSyntaxError(
            f"pointer type '{text}' is not supported: a pointer means nothing in user space; "
            "copy the data into a char[N] or integer field instead")
    m = _TYPE_RE.match(text)
    if not m:
        raise TypeSyntaxError(f"'{text}' is not a type (expected e.g. u32, char[16], u64[4])")
    base, count = m.group(1), m.group(2)
    if base in STACKS:
        depth = int(count) if count is not None else MAX_STACK_DEPTH
        if not 1 <= depth <= MAX_STACK_DEPTH:
            raise TypeSyntaxError(f"stack depth {count} is out of range (1..{MAX_STACK_DEPTH})")
        return TypeRef(base, None, depth)
    if base == "char" and count is None:
        raise TypeSyntaxError("a lone 'char' is not supported: use char[N] for text or u8/s8")
    if count is not None and not 1 <= int(count) <= 65536:
        raise TypeSyntaxError(f"array length {count} is out of range (1..65536)")
    return TypeRef(base, int(count) if count is not None else None)


@dataclass(frozen=True)
class Member:
    """One member of a laid-out struct; padding members have `padding=True`."""

    name: str
    type: TypeRef
    offset: int
    size: int
    align: int
    padding: bool = False
    origin: str = ""  # the spec element it came from, for comments


@dataclass(frozen=True)
class Layout:
    members: Tuple[Member, ...]
    size: int
    align: int

    @property
    def fields(self) -> Tuple[Member, ...]:
        return tuple(m for m in self.members if not m.padding)


def size_align(t: TypeRef, structs: Mapping[str, Layout]) -> Tuple[int, int]:
    if t.is_struct:
        inner = structs[t.base]
        unit, align = inner.size, inner.align
    else:
        sc = t.scalar
        assert sc is not None
        unit, align = sc.size, sc.align
    return unit * (t.count or 1), align


def lay_out(fields: Tuple[Tuple[str, TypeRef, str], ...],
            structs: Mapping[str, Layout]) -> Layout:
    """Lay out `(name, type, origin)` fields in order, with explicit padding members."""
    members = []
    offset = 0
    max_align = 1
    pads = 0
    for name, t, origin in fields:
        size, align = size_align(t, structs)
        gap = -offset % align
        if gap:
            members.append(_pad(pads, offset, gap, f"padding before '{name}'"))
            pads += 1
            offset += gap
        members.append(Member(name, t, offset, size, align, False, origin))
        offset += size
        max_align = max(max_align, align)
    tail = -offset % max_align
    if tail:
        members.append(_pad(pads, offset, tail, "tail padding"))
        offset += tail
    return Layout(tuple(members), offset, max_align)


def _pad(index: int, offset: int, size: int, why: str) -> Member:
    return Member(f"_pad{index}", TypeRef("u8", size), offset, size, 1, True, why)
