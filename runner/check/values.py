"""Values: an integer literal, a built-in or a string literal, checked against where it goes
(a scalar of some width, a char[N] field, a struct's fields)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import replace
from typing import Any, Dict, Optional, Tuple

from runner.check import arith, resolve, stacks
from runner.check.checker import Checker, Skip
from runner.check.expr import ExprError
from runner.check.scope import ActionScope
from runner.kinds.builtins import BUILTINS
from runner.model.expr import BuiltinRef, Cast, Const, PtrStr, StrSource, Value
from runner.model.spec import Assign, Struct
from runner.model.stacks import STACK_PID
from runner.model.types import SCALARS, STACKS, Scalar, TypeRef
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean, known

COMM_LEN = 16


def scalar_value(ck: Checker, path: PathKey, raw: Any, target: Scalar,
                 scope: ActionScope) -> Value:
    """An integer value going into `target`: a literal that fits, or a built-in no wider."""
    if isinstance(raw, bool):
        ck.err(path, f"expected a number or a built-in, got {str(raw).lower()}")
        raise Skip
    if isinstance(raw, int):
        if not target.min <= raw <= target.max:
            ck.err(path, f"{raw} does not fit in {target.name} ({target.min}..{target.max})")
            raise Skip
        return Const(raw)
    name = raw if isinstance(raw, str) else None
    if name is not None and name in STACKS:
        stacks.misused(ck, path, name, f"a number for a {target.name}")
    b = BUILTINS.get(name)
    if (name is not None and b is None and (not _IDENT.match(name)
                                            or resolve.looks_constant(name))) \
            or name in scope.locals:
        return _expression(ck, path, name, target, scope)  # type: ignore[arg-type]
    if b is None and name is not None and name.split(".")[0] in _NAMESPACES:
        return _expression(ck, path, name, target, scope)
    if b is None or b.name == "comm":
        what = f"'{raw['literal']}'" if isinstance(raw, dict) else repr(raw)
        hint = did_you_mean(name, BUILTINS) if name else None
        ck.err(path, f"expected a number or an integer built-in for a {target.name}, "
               f"got {what}", hint or known("built-ins", (k for k in BUILTINS if k != "comm")))
        raise Skip
    resolve.use_builtin(ck, path, b.name, scope)
    src = SCALARS[b.type]
    if src.bits > target.bits:
        ck.err(path, f"'{b.name}' is a {src.name} and does not fit in a {target.name}",
               f"use a {src.name} (or wider) field")
        raise Skip
    return Cast(target.name, BuiltinRef(b.name))


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NAMESPACES = ("args", "params", "task", "ppid")


def parse_value(ck: Checker, path: PathKey, text: str, scope: ActionScope) -> arith.Typed:
    """A value written as text (arithmetic, casts, names); reported and Skip when bad."""
    try:
        return arith.parse(text, resolve.resolver(ck, path, scope))
    except ExprError as err:
        ck.err_in(path, text, err.column, f"bad value: {err}")
        raise Skip from None


def _expression(ck: Checker, path: PathKey, text: str, target: Scalar,
                scope: ActionScope) -> Value:
    """An integer expression going into `target`: it must not be wider (cast it to say
    that truncation is meant); a constant must fit."""
    v = parse_value(ck, path, text, scope)
    if not v.is_int:
        ck.err(path, f"'{text}' is {v.kind()}, not a number for a {target.name}")
        raise Skip
    if isinstance(v.node, Const):  # range-checked; an enum constant keeps its name for C
        fitted = scalar_value(ck, path, v.node.value, target, scope)
        return replace(fitted, name=v.node.name) if isinstance(fitted, Const) else fitted
    assert v.scalar is not None
    if SCALARS[v.scalar].bits > target.bits:
        ck.err(path, f"'{text}' is a {v.scalar} and does not fit in a {target.name}",
               f"cast it if truncation is meant: ({target.name})(...)")
        raise Skip
    return Cast(target.name, v.node)  # type: ignore[arg-type]


def assign(ck: Checker, path: PathKey, member: str, t: TypeRef, raw: Any,
           scope: ActionScope) -> Assign:
    """How to fill one field of type `t` from a spec value."""
    if t.is_struct:
        ck.err(path, f"field '{member}' is a struct ({t}) and cannot be set from a value",
               "leave it out: it stays zero")
        raise Skip
    if t.is_stack:
        return stacks.capture(ck, path, member, t, raw, scope.locals)
    if isinstance(raw, str) and raw in STACKS:  # text "kstack" is written {literal: kstack}
        stacks.misused(ck, path, raw, f"a value for field '{member}' ({t})")
    if t.count is not None and not t.is_string:
        return _array(ck, path, member, t, raw, scope)
    if t.is_string:
        return _string(ck, path, member, t, raw, scope)
    assert t.scalar is not None
    if isinstance(raw, str) and raw not in BUILTINS and (
            not _IDENT.match(raw) or raw in scope.locals or raw in resolve.TASK_ALIASES
            or resolve.looks_constant(raw)):
        return Assign(member, "expr", _expression(ck, path, raw, t.scalar, scope), 0)
    if isinstance(raw, dict) or (isinstance(raw, str) and raw not in BUILTINS):
        hint = did_you_mean(raw, BUILTINS) if isinstance(raw, str) else None
        shown = repr(raw["literal"] if isinstance(raw, dict) else raw)
        ck.err(path, f"field '{member}' is {t}: a string {shown} does not fit",
               hint or "give a number or an integer built-in")
        raise Skip
    return Assign(member, "expr", scalar_value(ck, path, raw, t.scalar, scope), 0)


def _string(ck: Checker, path: PathKey, member: str, t: TypeRef, raw: Any,
            scope: ActionScope) -> Assign:
    """A char[N] field: comm, a string read from where a value says, or a literal that
    fits with its NUL."""
    assert t.count is not None
    if raw == "comm":
        return Assign(member, "comm", None, min(t.count, COMM_LEN))
    src = _string_source(ck, path, raw, scope)
    if src is not None:
        return Assign(member, "read", src, t.count)
    if (isinstance(raw, str) and raw in BUILTINS) or isinstance(raw, int):
        ck.err(path, f"field '{member}' is {t}: it takes text or comm, not {raw!r}")
        raise Skip
    text = raw["literal"] if isinstance(raw, dict) else raw
    data = text.encode("utf-8")
    if b"\0" in data:
        ck.err(path, "a string literal cannot contain a NUL character")
        raise Skip
    if len(data) + 1 > t.count:
        ck.err(path, f"literal of {len(data)} bytes does not fit in {t} "
               f"(room for {t.count - 1} plus the NUL)")
        raise Skip
    return Assign(member, "string", text, len(data) + 1)


def _array(ck: Checker, path: PathKey, member: str, t: TypeRef, raw: Any,
           scope: ActionScope) -> Assign:
    """An integer array field (u8[4]): copied whole from an array value declared alike,
    such as a tracepoint's `__u8 saddr[4]`; the length is a constant, as the verifier
    wants, and a different length or element type is refused rather than cut or padded."""
    v = parse_value(ck, path, raw, scope) if isinstance(raw, str) else None
    src = v.array if v is not None else None
    if src is None:
        what = v.kind() if v is not None else repr(raw)
        ck.err(path, f"field '{member}' is an array ({t}): it takes an array value (a "
               f"tracepoint's array field such as args.saddr), not {what}",
               "leave it out: it stays zero")
        raise Skip
    if (src.scalar, src.count) != (t.base, t.count):
        ck.err(path, f"field '{member}' is {t} but '{raw}' is {src.scalar}[{src.count}]: "
               "an array is copied whole, into a field of its own type and length",
               f"declare the field {src.scalar}[{src.count}]")
        raise Skip
    assert t.count is not None
    return Assign(member, "copy", src, SCALARS[t.base].size * t.count)


_POINTER_FORMS = {"user_string": "user", "kernel_string": "kernel"}


def _string_source(ck: Checker, path: PathKey, raw: Any,
                   scope: ActionScope) -> Optional[StrSource]:
    """Where a string value comes from, or None when `raw` is a literal."""
    if isinstance(raw, dict) and "literal" not in raw:
        (form, text), = raw.items()
        v = parse_value(ck, (*path, form), str(text), scope)
        if v.scalar not in ("u64", "s64"):
            ck.err((*path, form), f"{form} reads from an address: '{text}' is "
                   f"{v.scalar or v.kind()}, not a 64-bit value")
            raise Skip
        return PtrStr(_POINTER_FORMS[form], v.node)  # type: ignore[arg-type]
    if not isinstance(raw, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", raw):
        return None
    if raw in BUILTINS or (raw.split(".")[0] not in _NAMESPACES
                           and raw not in scope.locals):
        return None
    v = parse_value(ck, path, raw, scope)
    if v.array is not None:
        ck.err(path, f"'{raw}' is {v.kind()}, not a string",
               f"an array fills a field declared {v.array.scalar}[{v.array.count}]")
        raise Skip
    if v.string is None:
        ck.err(path, f"'{raw}' is a number ({v.scalar}), not a string",
               "a pointer stored as a number reads with {user_string: ...} or "
               "{kernel_string: ...}")
        raise Skip
    return v.string


def assigns(ck: Checker, path: PathKey, struct: Struct, values: Dict[str, Any],
            scope: ActionScope) -> Tuple[Assign, ...]:
    """The fields of a record (an event, a struct key) set from a mapping field -> value."""
    fields = {m.name: m for m in struct.layout.fields if m.name != STACK_PID}
    out = []
    for fname, raw in values.items():
        fpath = (*path, fname)
        if fname not in fields:
            ck.err(fpath, f"struct '{struct.name}' has no field '{fname}'",
                   did_you_mean(fname, fields) or known("fields", fields), key=True)
            continue
        with contextlib.suppress(Skip):
            out.append(assign(ck, fpath, fname, fields[fname].type, raw, scope))
    return tuple(out)


def fills_every_byte(struct: Struct, done: Tuple[Assign, ...]) -> bool:
    """Whether the assignments write the whole record, so zeroing it first is wasted work.

    Every member must be assigned and there must be no padding; a string literal writes only
    its bytes and the NUL, and comm writes exactly its length, so those must fill the field.
    """
    sizes = {m.name: m.size for m in struct.members}
    if any(m.padding for m in struct.members) or {a.member for a in done} != set(sizes):
        return False
    return all(a.how == "expr" or a.size == sizes[a.member] for a in done)
