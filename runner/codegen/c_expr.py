"""Spelling runner/model/expr.py trees and types in C: the only place they become text."""

from __future__ import annotations

from typing import Callable, Dict, Optional

from runner.kinds.builtins import BUILTINS
from runner.kinds.registry import UnknownKind
from runner.model.expr import BuiltinRef, Cast, Compare, Const, Expr, Group, Logic, Not
from runner.model.types import SCALARS, TypeRef


def spell(e: Expr) -> str:
    how = _SPELLING.get(type(e))
    if how is None:
        raise UnknownKind(f"internal error: no C spelling for {type(e).__name__}")
    return how(e)


def _const(e: Const) -> str:
    if not e.wide:
        return f"{e.value}"
    return f"{e.value}LL" if e.value < 2**63 else f"{e.value}ULL"


def _operand(e: Expr) -> str:
    # A built-in's C may be an expression (`(u32)er_uid_gid`): bracket it inside a comparison.
    return f"({spell(e)})" if isinstance(e, BuiltinRef) else spell(e)


_SPELLING: Dict[type, Callable] = {
    Const: _const,
    BuiltinRef: lambda e: BUILTINS.lookup(e.name).c,
    Cast: lambda e: f"({SCALARS[e.scalar].c})({spell(e.value)})",
    Compare: lambda e: f"({_operand(e.left)} {e.op} {_operand(e.right)})",
    Logic: lambda e: f" {e.op} ".join(spell(p) for p in e.parts),
    Not: lambda e: "!" + spell(e.value),
    Group: lambda e: f"({spell(e.value)})",
}


def c_type(t: Optional[TypeRef]) -> str:
    """The C spelling of a map's key or value type; u32 where a map has none (buffers,
    prog_array), as BCC's macros want one."""
    if t is None:
        return "u32"
    return f"struct {t.base}" if t.is_struct else (t.scalar.c if t.scalar else t.base)
