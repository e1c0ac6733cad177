"""A tracepoint's record layout, parsed from its tracefs `format` file.

`events/<category>/<name>/format` lists each field of the record a tracepoint
program receives as `field:DECL; offset:N; size:N; signed:0|1;`. This module turns
that text into frozen values; it reads no file itself (see tracepoints.py), so
the checker and its tests can use it without root or tracefs.

Two kernel facts shape the model:
- syscalls:sys_enter_* records store every argument in an 8-byte slot and always
  say `signed:0` (kernel/trace/trace_syscalls.c hard-codes it), whatever the C
  type: `int dfd` is 8 bytes, unsigned. The value's own width and sign come from
  the declared type, so an AT_FDCWD of -100 reads as -100, not 2^32 - 100.
- the kernel builds with -funsigned-char since 6.2, so `char` is unsigned on
  6.18 and signed on 6.1 x86: for `char` the format's column decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

# Integer types seen in tracepoint formats: (bytes, signed). A type missing here
# takes the format's own size and signed column (right for every field except
# syscall arguments, whose slot is wider than their type).
INTEGERS: Dict[str, Tuple[int, bool]] = {
    "signed char": (1, True), "unsigned char": (1, False),
    "short": (2, True), "short int": (2, True), "signed short": (2, True),
    "unsigned short": (2, False), "unsigned short int": (2, False),
    "int": (4, True), "signed int": (4, True), "signed": (4, True),
    "unsigned": (4, False), "unsigned int": (4, False),
    "long": (8, True), "long int": (8, True), "signed long": (8, True),
    "unsigned long": (8, False), "unsigned long int": (8, False),
    "long long": (8, True), "long long int": (8, True),
    "unsigned long long": (8, False), "unsigned long long int": (8, False),
    "bool": (1, False), "_Bool": (1, False),
    "u8": (1, False), "__u8": (1, False), "uint8_t": (1, False),
    "s8": (1, True), "__s8": (1, True), "int8_t": (1, True),
    "u16": (2, False), "__u16": (2, False), "uint16_t": (2, False),
    "s16": (2, True), "__s16": (2, True), "int16_t": (2, True),
    "u32": (4, False), "__u32": (4, False), "uint32_t": (4, False), "uint": (4, False),
    "s32": (4, True), "__s32": (4, True), "int32_t": (4, True),
    "u64": (8, False), "__u64": (8, False), "uint64_t": (8, False),
    "s64": (8, True), "__s64": (8, True), "int64_t": (8, True),
    # Kernel typedefs (include/linux/types.h, include/uapi/asm-generic/posix_types.h).
    "pid_t": (4, True), "uid_t": (4, False), "gid_t": (4, False), "qid_t": (4, False),
    "umode_t": (2, False), "dev_t": (4, False), "ino_t": (8, False),
    "size_t": (8, False), "ssize_t": (8, True), "loff_t": (8, True), "off_t": (8, True),
    "clockid_t": (4, True), "timer_t": (4, True), "mqd_t": (4, True), "key_t": (4, True),
    "key_serial_t": (4, True), "rwf_t": (4, True), "aio_context_t": (8, False),
    "time64_t": (8, True), "sector_t": (8, False), "gfp_t": (4, False),
}


@dataclass(frozen=True)
class IntType:
    """An integer value: `size` and `signed` are the value's, not the slot's."""

    ctype: str
    size: int
    signed: bool


@dataclass(frozen=True)
class ArrayType:
    """A fixed array in the record, e.g. `char comm[16]` (element char, count 16)."""

    elem: IntType
    count: int  # 0 for a trailing flexible array (`unsigned long ips[0]`)


@dataclass(frozen=True)
class DataLocType:
    """`__data_loc T[]`: a u32 in the record, offset in the low 16 bits and length in the
    high 16, of data stored after the fixed part. `__rel_loc` (relative=True) counts the
    offset from the end of the u32 itself instead of from the record's start."""

    elem: str
    relative: bool

    @property
    def is_string(self) -> bool:
        return self.elem == "char"


@dataclass(frozen=True)
class PointerType:
    """An address. `user` means it points into user memory (syscall arguments), so a
    string behind it needs bpf_probe_read_user_str, not the kernel variant."""

    ctype: str
    user: bool


@dataclass(frozen=True)
class OpaqueType:
    """Anything else (a struct by value, an array of structs): readable only as bytes."""

    ctype: str


FieldType = Union[IntType, ArrayType, DataLocType, PointerType, OpaqueType]


@dataclass(frozen=True)
class Field:
    name: str
    ctype: str  # the type as the format spells it, without the array suffix
    offset: int  # bytes from the start of the record
    size: int  # bytes of the slot in the record
    signed: bool  # the format's `signed:` column, as the kernel wrote it
    type: FieldType
    common: bool  # common_type, common_pid...: the header every record starts with

    @property
    def decl(self) -> str:
        """The declaration as the format (and `bpftrace -lv`) prints it."""
        if isinstance(self.type, ArrayType):
            return f"{self.ctype} {self.name}[{self.type.count}]"
        return f"{self.ctype} {self.name}"


@dataclass(frozen=True)
class Format:
    category: str
    name: str
    id: Optional[int]  # tracefs event ID; None in the shipped table (it varies by kernel)
    fields: Tuple[Field, ...]  # the tracepoint's own fields, in record order
    common: Tuple[Field, ...]  # the common_* header fields

    @property
    def full_name(self) -> str:
        return f"{self.category}:{self.name}"

    def field(self, name: str) -> Optional[Field]:
        for f in self.fields:
            if f.name == name:
                return f
        return None

    @property
    def syscall_args(self) -> Tuple[Field, ...]:
        """A syscalls:sys_enter_* record's arguments, in order: its fields after
        __syscall_nr (argN is syscall_args[N]; sys_enter_getppid has none). For
        sys_exit_* this is (ret,)."""
        return tuple(f for f in self.fields if f.name != "__syscall_nr")


class FormatError(ValueError):
    """A format text this parser does not understand; says which line."""


_LINE = re.compile(r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<offset>\d+);\s*size:(?P<size>\d+);"
                   r"(?:\s*signed:(?P<signed>[01]);)?\s*$")
_DECL = re.compile(r"^(?P<ctype>.*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*(?:\[(?P<count>[^\]]*)\])?$")
_QUALIFIERS = ("const ", "volatile ")


def parse_format(text: str, category: str) -> Format:
    """The Format of one tracepoint from its format file's text. `category` comes from
    the file's path (the text does not say it) and marks syscall pointers as user ones."""
    name: Optional[str] = None
    event_id: Optional[int] = None
    fields = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("name:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("ID:"):
            event_id = int(line.split(":", 1)[1])
        elif line.lstrip().startswith("field:"):
            fields.append(parse_field(line, category, lineno))
        elif line.startswith("print fmt:"):
            break
    if name is None:
        raise FormatError("line 1: no 'name:' line")
    return Format(category, name, event_id, tuple(f for f in fields if not f.common),
                  tuple(f for f in fields if f.common))


def parse_field(line: str, category: str, lineno: int = 1) -> Field:
    m = _LINE.match(line)
    d = _DECL.match(m.group("decl").strip()) if m else None
    if m is None or d is None:
        raise FormatError(f"line {lineno}: not a field line: {line.strip()!r}")
    size = int(m.group("size"))
    signed = m.group("signed") == "1"
    ctype, name, count = d.group("ctype"), d.group("name"), d.group("count")
    if count is not None:
        kind = _array(ctype, size, signed, count)
    else:
        kind = _scalar(ctype, size, signed, category)
    return Field(name, ctype, int(m.group("offset")), size, signed, kind,
                 common=name.startswith("common_"))


def _scalar(ctype: str, size: int, signed: bool, category: str) -> FieldType:
    for prefix, relative in (("__data_loc ", False), ("__rel_loc ", True)):
        if ctype.startswith(prefix) and ctype.endswith("[]"):
            return DataLocType(ctype[len(prefix):-2].strip(), relative)
    if ctype.endswith("*"):
        # Syscall arguments are __user pointers; the annotation is gone from the text.
        return PointerType(ctype, user=category == "syscalls")
    return integer(ctype, size, signed) or OpaqueType(ctype)


def _array(ctype: str, size: int, signed: bool, count_text: str) -> FieldType:
    if not count_text.isdigit():
        return OpaqueType(f"{ctype}[{count_text}]")
    count = int(count_text)
    elem = integer(ctype, size // count if count else 0, signed)
    if elem is None:
        return OpaqueType(f"{ctype}[{count}]")
    return ArrayType(elem, count)


def integer(ctype: str, size: int, signed: bool) -> Optional[IntType]:
    """The value type of an integer declared `ctype` in a `size`-byte slot whose format
    says `signed`; None when `ctype` is not an integer (a struct, a union)."""
    base = ctype
    while base.startswith(_QUALIFIERS):
        base = base.split(" ", 1)[1]
    if base == "char":
        return IntType(ctype, 1, signed and size == 1)
    if base in INTEGERS:
        width, is_signed = INTEGERS[base]
        return IntType(ctype, min(width, size) if size else width, is_signed)
    if base.startswith(("struct ", "union ")):
        return None
    if base.startswith("enum "):
        # C enums are int-sized; syscall slots are wider and say nothing of the sign.
        return IntType(ctype, min(size, 4) if size else 4, signed)
    if size in (1, 2, 4, 8):
        return IntType(ctype, size, signed)  # a typedef we do not know: trust the format
    return None
