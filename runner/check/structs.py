"""The structs section: fields, types, dependency order and layout."""

from __future__ import annotations

import builtins as py_builtins
from typing import Dict, List, Optional, Set, Tuple

from runner.check.checker import Checker
from runner.check.names import hex_companions_free, name_ok
from runner.model.spec import Struct
from runner.model.stacks import STACK_PID
from runner.model.types import SCALARS, TypeRef, TypeSyntaxError, lay_out, parse_type
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean, known

MAX_STRUCT = 65536  # the largest BPF map value

Fields = List[Tuple[str, TypeRef, str]]  # (name, type, origin)


def check(ck: Checker) -> None:
    """Fill ck.structs, each after the structs it contains."""
    parsed = {sname: _fields(ck, sname, fields)
              for sname, fields in ck.data.get("structs", {}).items()}
    for sname in _order(ck, parsed):
        if any(t.is_struct and t.base not in ck.structs for _, t, _ in parsed[sname]):
            continue  # a struct it contains was refused, and reported
        inner = next((t.base for _, t, _ in parsed[sname]
                      if t.is_struct and stack_field(ck, t) is not None), None)
        if inner is not None:
            ck.err(("structs", sname), f"struct '{sname}' contains struct '{inner}', which "
                   "holds a stack: a stack field is a field of a map value's own struct",
                   "move the stack field into this struct", key=True)
            continue
        layout = lay_out(tuple(parsed[sname]), {k: v.layout for k, v in ck.structs.items()})
        if layout.size > MAX_STRUCT:
            ck.err(("structs", sname), f"struct '{sname}' is {layout.size} bytes; the "
                   f"limit is {MAX_STRUCT} (the largest BPF map value)", key=True)
            continue
        ck.structs[sname] = Struct(sname, layout, ck.origin(("structs", sname)))


def _fields(ck: Checker, sname: str, fields: List[Dict[str, str]]) -> Fields:
    path: PathKey = ("structs", sname)
    name_ok(ck, path, sname, "struct")
    if sname in py_builtins.__dict__:
        ck.err(path, f"struct name '{sname}' shadows a Python built-in",
               "choose another name", key=True)
    seen: Set[str] = set()
    out = []
    where: List[Tuple[str, TypeRef, PathKey]] = []
    for i, entry in enumerate(fields):
        (fname, tname), = entry.items()
        fpath = (*path, i, fname)
        if fname in seen:
            ck.err(fpath, f"duplicate field '{fname}' in struct '{sname}'", key=True)
        seen.add(fname)
        name_ok(ck, fpath, fname, "field")
        t = type_of(ck, fpath, tname, stacks=True)
        if t:
            out.append((fname, t, ck.origin(fpath)))
            where.append((fname, t, fpath))
    hex_companions_free(ck, where)
    if any(t.base == "ustack" for _, t, _ in out):
        # A user stack's addresses mean something only in the process that took it: its pid
        # goes with it, hidden (set where the record is filled; runner/check/stacks.py).
        out.append((STACK_PID, TypeRef("u32"), ck.origin(path)))
    return out


def type_of(ck: Checker, path: PathKey, text: str, stacks: bool = False
            ) -> Optional[TypeRef]:
    """Parse a type the spec names; a struct must be declared in the spec. A stack type
    only where `stacks` says (an aggregation's key, a struct's field): it is an id in a
    stack map, which a bare map key or value would not say."""
    try:
        t = parse_type(text)
    except TypeSyntaxError as e:
        ck.err(path, str(e))
        return None
    if t.is_stack and not stacks:
        ck.err(path, f"a {t.base} is a field of an aggregation's key or of a struct, not a "
               "map's key or value", f"declare it in an aggregation's key, e.g. key: "
               f"{{stack: {text}}}, or in the struct a map holds")
        return None
    if t.is_struct and t.base not in ck.data.get("structs", {}):
        ck.err(path, f"unknown type '{t.base}'",
               did_you_mean(t.base, [*SCALARS, *ck.data.get("structs", {})])
               or known("types", SCALARS))
        return None
    return t


def stack_field(ck: Checker, t: TypeRef) -> Optional[str]:
    """The first stack field of struct `t` (a declared struct), or None."""
    struct = ck.structs.get(t.base)
    fields = struct.layout.fields if struct else ()
    return next((f.name for f in fields if f.type.is_stack), None)


def _order(ck: Checker, parsed: Dict[str, Fields]) -> List[str]:
    """Structs in an order where each comes after the structs it contains."""
    order: List[str] = []
    state: Dict[str, str] = {}

    def visit(name: str, trail: Tuple[str, ...]) -> bool:
        if state.get(name) == "done":
            return True
        if state.get(name) == "active":
            ck.err(("structs", name), "struct contains itself: "
                   + " -> ".join((*trail, name)), key=True)
            return False
        state[name] = "active"
        ok = all(visit(t.base, (*trail, name)) for _, t, _ in parsed.get(name, [])
                 if t.is_struct and t.base in parsed)
        state[name] = "done"
        if ok:
            order.append(name)
        return ok

    for name in parsed:
        visit(name, ())
    return order


def type_size(ck: Checker, t: TypeRef) -> int:
    if t.is_struct:
        unit = ck.structs[t.base].layout.size
    else:
        assert t.scalar is not None
        unit = t.scalar.size
    return unit * (t.count or 1)
