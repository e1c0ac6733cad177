"""`args.NAME`: a probe's named arguments and record fields, typed from tracepoint formats.

A `syscall:` probe's arguments are named by the syscall's syscalls:sys_enter_* format
(`dfd`, `filename`, `flags`...). Whichever option attached (kprobe on the syscall
function, the tracepoint, raw sys_enter), the prologue fills argN from the same user
registers or record slots, so `args.NAME` is argN converted to the argument's declared C
type: an `int dfd` of -100 reads as -100 everywhere. A syscall exit has `args.ret`. Other
tracepoints read their record's fields at the format's offsets: integers with their
width and sign, char arrays and __data_loc strings as text, other integer arrays (`__u8
saddr[4]`) as arrays, which only fill an array field declared alike.

Formats come from runner/support/tracepoints.py: the running kernel's tracefs when it is
readable, else the shipped table, so `render` and `validate` work without root.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

from runner.check import syscall_sets
from runner.check.arith import Typed
from runner.check.checker import Checker
from runner.model import expr as e
from runner.model.types import SCALAR_BY_SIZE
from runner.support import tracepoints
from runner.support.tracefs import ArrayType, DataLocType, Field, Format, IntType, PointerType


@dataclass(frozen=True)
class Arg:
    value: Typed
    builtins: Tuple[str, ...]  # built-ins its reading needs (argN, ret)
    decl: str  # as the format declares it, for messages


@lru_cache(maxsize=4)
def catalog(arch: str) -> tracepoints.Catalog:
    return tracepoints.open_catalog(arch)


def probe_args(ck: Checker, probe: str) -> Dict[str, Arg]:
    """The names every attach option of the probe gives the same meaning."""
    raw = ck.data["probes"][probe]["attach"]
    found: Optional[Dict[str, Arg]] = None
    for item in raw if isinstance(raw, list) else [raw]:
        (key, target), = item.items()
        mine = _option_args(ck.arch, key, target)
        found = mine if found is None else {k: v for k, v in found.items() if mine.get(k) == v}
    return found or {}


def probe_unshared(ck: Checker, probe: str) -> Dict[str, str]:
    """Of a probe on several syscalls: the argument names some of them have but not all
    alike, each with the message a use of it gets (runner/check/syscall_sets.py)."""
    raw = ck.data["probes"][probe]["attach"]
    out: Dict[str, str] = {}
    for item in raw if isinstance(raw, list) else [raw]:
        (key, target), = item.items()
        cat = catalog(ck.arch)
        if key == "syscall" and syscall_sets.is_many(target):
            scs, _ = syscall_sets.members(cat, target)
            have = {s.name: _positions(cat.format(s.enter_tracepoint or "")) for s in scs}
            out.update(syscall_sets.unshared(have))
        elif key == "tracepoint" and syscall_sets.is_many(target):
            have = {t: _offsets(cat.format(t)) for t in tracepoint_matches(cat, target)}
            out.update(syscall_sets.unshared(have, "tracepoint", "offset"))
    return out


def tracepoint_matches(cat: tracepoints.Catalog, pattern: str) -> List[str]:
    """The tracepoints a glob names here (`sched:sched_process_*`), sorted."""
    return [n for n in cat.match(pattern) if cat.has(n)]


def _offsets(fmt: Optional[Format]) -> Dict[str, Tuple[int, str]]:
    return {f.name: (f.offset, f.decl) for f in fmt.fields} if fmt is not None else {}


def _positions(fmt: Optional[Format]) -> Dict[str, Tuple[int, str]]:
    args = [f for f in fmt.fields if f.name != "__syscall_nr"] if fmt is not None else []
    return {f.name: (i, f.decl) for i, f in enumerate(args[:6])}


def _many_args(arch: str, key: str, target: object) -> Dict[str, Arg]:
    """The arguments every syscall of a list or glob has alike."""
    cat = catalog(arch)
    scs, _ = syscall_sets.members(cat, target)
    found: Optional[Dict[str, Arg]] = None
    for s in scs:
        tp = (s.enter_tracepoint if key == "syscall" else s.exit_tracepoint) or ""
        mine = _option_args(arch, "tracepoint", tp)
        found = mine if found is None else {k: v for k, v in found.items() if mine.get(k) == v}
    return found or {}


def _option_args(arch: str, key: str, target: str) -> Dict[str, Arg]:
    if key in ("syscall", "syscall_exit") and syscall_sets.is_many(target):
        return _many_args(arch, key, target)
    if key == "tracepoint" and syscall_sets.is_many(target):
        found: Optional[Dict[str, Arg]] = None
        for t in tracepoint_matches(catalog(arch), target):
            mine = _option_args(arch, key, t)
            found = mine if found is None else {k: v for k, v in found.items()
                                                if mine.get(k) == v}
        return found or {}
    if key in ("syscall", "syscall_exit"):
        sc = catalog(arch).syscall(target)
        if sc is None:
            return {}
        target = (sc.enter_tracepoint if key == "syscall" else sc.exit_tracepoint) or ""
        key = "tracepoint"
    if key != "tracepoint":
        return {}
    if target.startswith("syscalls:sys_exit_"):
        return {"ret": Arg(Typed(e.BuiltinRef("retval"), "s64"), ("retval",), "long ret")}
    fmt = catalog(arch).format(target)
    if fmt is None:
        return {}
    if target.startswith("syscalls:sys_enter_"):
        return _syscall_args(fmt)
    return {f.name: a for f in fmt.fields if (a := _record_field(f)) is not None}


def _syscall_args(fmt: Format) -> Dict[str, Arg]:
    out = {}
    args = [f for f in fmt.fields if f.name != "__syscall_nr"]
    for i, f in enumerate(args[:6]):
        reg = e.BuiltinRef(f"arg{i}")
        if isinstance(f.type, PointerType):
            space = "user" if f.type.user else "kernel"
            out[f.name] = Arg(Typed(reg, "u64", e.PtrStr(space, reg)), (reg.name,), f.decl)
        elif isinstance(f.type, IntType):
            scalar = SCALAR_BY_SIZE[(f.type.size, f.type.signed)]
            out[f.name] = Arg(Typed(e.Cast(scalar, reg), scalar), (reg.name,), f.decl)
    return out


def _record_field(f: Field) -> Optional[Arg]:
    t = f.type
    if isinstance(t, IntType) and (t.size, t.signed) in SCALAR_BY_SIZE:
        scalar = SCALAR_BY_SIZE[(t.size, t.signed)]
        return Arg(Typed(e.RecordInt(f.offset, scalar), scalar), (), f.decl)
    if isinstance(t, PointerType):
        node = e.RecordInt(f.offset, "u64")
        space = "user" if t.user else "kernel"
        return Arg(Typed(node, "u64", e.PtrStr(space, node)), (), f.decl)
    if isinstance(t, ArrayType) and t.elem.size == 1 and t.count and "char" in t.elem.ctype:
        src = e.RecordChars(f.offset, t.count)
        return Arg(Typed(src, None, src), (), f.decl)
    if isinstance(t, ArrayType) and t.count and (t.elem.size, t.elem.signed) in SCALAR_BY_SIZE:
        elem = SCALAR_BY_SIZE[(t.elem.size, t.elem.signed)]
        return Arg(Typed(e.RecordArray(f.offset, elem, t.count), None), (), f.decl)
    if isinstance(t, DataLocType) and t.is_string:
        dl = e.RecordDataLoc(f.offset, t.relative)
        return Arg(Typed(dl, None, dl), (), f.decl)
    return None
