"""Values and conditions as data: what the checker decided, which codegen spells in C.

The checker builds these from checked spec text only (integers it range-checked, built-in
names it looked up), so nothing the spec wrote reaches the C but through codegen's spelling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple, Union


@dataclass(frozen=True)
class Const:
    value: int
    # Spelled with LL/ULL so C computes in 64 bits whatever the destination; counts and
    # message ids, which C reads as plain int, are written bare.
    wide: bool = True


@dataclass(frozen=True)
class BuiltinRef:
    name: str  # a runner/kinds/builtins.py name


@dataclass(frozen=True)
class Cast:
    """A built-in converted to a scalar type: the checker has made sure it fits."""

    scalar: str  # a runner/model/types.py SCALARS name
    value: BuiltinRef


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Union[Const, BuiltinRef]
    right: Union[Const, BuiltinRef]


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


Value = Union[Const, Cast]
Condition = Union[Compare, Logic, Not, Group]
Expr = Union[Const, BuiltinRef, Cast, Compare, Logic, Not, Group]
