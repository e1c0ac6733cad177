"""Values and conditions as data: what the checker decided, which codegen spells in C.

The checker builds these from checked spec text only (integers it range-checked, built-in
names it looked up), so nothing the spec wrote reaches the C but through codegen's spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union


@dataclass(frozen=True)
class Const:
    value: int
    # Spelled with LL/ULL so C computes in 64 bits whatever the destination; counts and
    # message ids, which C reads as plain int, are written bare.
    wide: bool = True
    name: str = ""  # a kernel enum constant's name (TCP_SYN_SENT): a comment beside it in C


@dataclass(frozen=True)
class BuiltinRef:
    name: str  # a runner/kinds/builtins.py name


@dataclass(frozen=True)
class Cast:
    """A value converted to a scalar type: the checker has made sure it fits, or the spec
    wrote the cast."""

    scalar: str  # a runner/model/types.py SCALARS name
    value: Number


@dataclass(frozen=True)
class Binary:
    """Arithmetic: both operands are converted to `scalar` (s64 or u64, decided and checked
    by runner/check/arith.py), so C's own promotions never pick the type silently."""

    op: str  # + - * / % << >> & | ^
    left: Number
    right: Number
    scalar: str


@dataclass(frozen=True)
class Negate:
    value: Number
    scalar: str  # s64


@dataclass(frozen=True)
class Local:
    """A named value a `let` action computed earlier in the same list (or a field of it,
    when it holds a struct looked up from a map)."""

    name: str
    field: Optional[str] = None


@dataclass(frozen=True)
class Param:
    """A parameter declared under `params:`; its value is fixed when the program is
    rendered (the default, or the one given on the command line)."""

    name: str


@dataclass(frozen=True)
class ParamStr:
    """A string parameter (`type: char[N]`): its text is fixed when the program is rendered,
    as a C string literal padded with NULs to `size` bytes (er_param_NAME), so it only ever
    stands where a string literal may: compared with a string value."""

    name: str
    size: int  # N: the text has at most N - 1 bytes


@dataclass(frozen=True)
class RecordInt:
    """An integer field of a tracepoint's record, at its offset from the format file."""

    offset: int
    scalar: str  # the field's own width and sign


@dataclass(frozen=True)
class TaskRead:
    """A field reached from the current task_struct: each offset but the last is a pointer
    member followed; the last is read as `scalar`. Offsets come from the running kernel's
    BTF (runner/support/btf.py), not from headers, which may be another kernel's."""

    offsets: Tuple[int, ...]
    scalar: str


# Where a string comes from: the task's comm, a NUL-terminated string behind a pointer, a
# char array or __data_loc string in a tracepoint record, or a char array of a local struct.

@dataclass(frozen=True)
class CommStr:
    pass


@dataclass(frozen=True)
class PtrStr:
    space: str  # "user" or "kernel": which bpf_probe_read_*_str helper
    address: Number


@dataclass(frozen=True)
class RecordChars:
    offset: int
    count: int


@dataclass(frozen=True)
class RecordDataLoc:
    offset: int
    relative: bool  # __rel_loc: the offset counts from the end of the u32 itself


@dataclass(frozen=True)
class LocalChars:
    name: str
    field: str
    count: int


StrSource = Union[CommStr, PtrStr, RecordChars, RecordDataLoc, LocalChars]


# Where an integer array comes from (`__u8 saddr[4]` of a tracepoint's record, or such a
# field of a local struct): copied whole, N elements of `scalar`, into a field declared
# alike. An array is no number: it only fills a field.

@dataclass(frozen=True)
class RecordArray:
    offset: int
    scalar: str  # the element's type
    count: int


@dataclass(frozen=True)
class LocalArray:
    name: str
    field: str
    scalar: str
    count: int


ArraySource = Union[RecordArray, LocalArray]
ARRAY_SOURCES = (RecordArray, LocalArray)


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Number
    right: Number


@dataclass(frozen=True)
class StrCompare:
    """A string against a literal or a string parameter: equal (`==`, `!=`) or, with
    prefix, starting with it. Compared byte by byte, unrolled: the literal's length (the
    parameter's size) bounds the work."""

    source: StrSource
    text: Union[str, ParamStr]
    negate: bool
    prefix: bool

    @property
    def buffer_size(self) -> int:
        """The bytes the string is read into (runner/codegen/c_strings.py; the stack check
        counts them): room for the literal, one byte more (so a longer string differs at
        its end) and the NUL; a parameter's N bytes and the NUL; comm is always read whole."""
        t = self.text
        n = t.size + 1 if isinstance(t, ParamStr) else len(t.encode()) + 2
        return max(n, 16) if isinstance(self.source, CommStr) else n


@dataclass(frozen=True)
class ParamIs:
    """A string parameter against a literal (`params.comm == ""`): both are known when the
    program is rendered, so the compiler folds the test to a constant."""

    param: ParamStr
    text: str
    negate: bool


@dataclass(frozen=True)
class Logic:
    op: str  # && or ||
    parts: Tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    value: Condition


@dataclass(frozen=True)
class Group:
    """Parentheses the spec wrote, kept so the C reads like the spec."""

    value: Condition


Number = Union[Const, BuiltinRef, Cast, Binary, Negate, Local, Param, RecordInt, TaskRead]
Value = Number
Condition = Union[Compare, StrCompare, ParamIs, Logic, Not, Group]
Expr = Union[Number, Compare, StrCompare, Logic, Not, Group, StrSource, ArraySource]
