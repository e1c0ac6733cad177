"""Spelling runner/model/expr.py trees and types in C: the only place they become text."""

from __future__ import annotations

from typing import Callable, Dict, Optional

from runner.codegen.c_strings import param_is, read_string, str_compare
from runner.kinds.builtins import BUILTINS
from runner.kinds.registry import UnknownKind
from runner.model.expr import (
    Binary,
    BuiltinRef,
    Cast,
    Compare,
    Const,
    Expr,
    Group,
    Local,
    LocalArray,
    Logic,
    Negate,
    Not,
    Param,
    ParamIs,
    RecordArray,
    RecordInt,
    StrCompare,
    TaskRead,
)
from runner.model.types import SCALARS, TypeRef


def spell(e: Expr) -> str:
    how = _SPELLING.get(type(e))
    if how is None:
        raise UnknownKind(f"internal error: no C spelling for {type(e).__name__}")
    return how(e)


def _const(e: Const) -> str:
    if not e.wide:
        return f"{e.value}"
    # A constant's name is an identifier the expression tokenizer took: no "*/" in it.
    named = f" /* {e.name} */" if e.name else ""
    return (f"{e.value}LL" if e.value < 2**63 else f"{e.value}ULL") + named


def _operand(e: Expr) -> str:
    # A built-in's C may be an expression (`(u32)er_uid_gid`): bracket it inside a comparison.
    return f"({spell(e)})" if isinstance(e, BuiltinRef) else spell(e)


def _c(scalar: str) -> str:
    return SCALARS[scalar].c


def _task_read(e: TaskRead) -> str:
    """Follow pointers from the current task at BTF offsets, each read checked by the
    helper (a NULL pointer reads as 0), and read the last member as its own type."""
    steps = [f"bpf_probe_read_kernel(&er_p, sizeof(er_p), (void *)(er_p + {off}));"
             for off in e.offsets[:-1]]
    return ("({ u64 er_p = (u64)bpf_get_current_task(); " + " ".join(steps)
            + f" {_c(e.scalar)} er_x = 0; bpf_probe_read_kernel(&er_x, sizeof(er_x), "
            f"(void *)(er_p + {e.offsets[-1]})); er_x; }})")


_SPELLING: Dict[type, Callable] = {
    Const: _const,
    BuiltinRef: lambda e: BUILTINS.lookup(e.name).c,
    Cast: lambda e: f"({SCALARS[e.scalar].c})({spell(e.value)})",
    Binary: lambda e: f"(({_c(e.scalar)})({spell(e.left)}) {e.op} "
                      f"({_c(e.scalar)})({spell(e.right)}))",
    Negate: lambda e: f"(-({_c(e.scalar)})({spell(e.value)}))",
    Local: lambda e: f"er_v_{e.name}" + (f".{e.field}" if e.field else ""),
    Param: lambda e: f"er_param_{e.name}",
    RecordInt: lambda e: f"(*({_c(e.scalar)} *)((char *)ctx + {e.offset}))",
    TaskRead: _task_read,
    StrCompare: lambda e: str_compare(e, spell),
    ParamIs: param_is,
    Compare: lambda e: f"({_operand(e.left)} {e.op} {_operand(e.right)})",
    Logic: lambda e: f" {e.op} ".join(spell(p) for p in e.parts),
    Not: lambda e: "!" + spell(e.value),
    Group: lambda e: f"({spell(e.value)})",
}


def string_into(src: Expr, dest: str, size: int) -> str:
    """The statement filling char[size] at `dest` from a string source."""
    return read_string(src, dest, size, spell)


def array_into(src: Expr, dest: str, size: int) -> str:
    """The statement copying an integer array whole into `dest` (`size` bytes, a constant
    the checker matched with both sides). A record's array is read with the helper, as its
    char arrays are; a local struct lives on the 512-byte stack, so its array is small
    enough for one inlined memcpy."""
    if isinstance(src, RecordArray):
        return f"bpf_probe_read_kernel({dest}, {size}, (char *)ctx + {src.offset});"
    if isinstance(src, LocalArray):
        return f"__builtin_memcpy({dest}, er_v_{src.name}.{src.field}, {size});"
    raise UnknownKind(f"internal error: no C copy for {type(src).__name__}")


def c_type(t: Optional[TypeRef]) -> str:
    """The C spelling of a map's key or value type; u32 where a map has none (buffers,
    prog_array), as BCC's macros want one."""
    if t is None:
        return "u32"
    return f"struct {t.base}" if t.is_struct else (t.scalar.c if t.scalar else t.base)
