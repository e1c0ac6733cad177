"""What the expression parser (runner/check/arith.py) shares: its error, with the column
it happened at, its tokens, and the reading of integer literals."""

from __future__ import annotations

from dataclasses import dataclass


class ExprError(ValueError):
    def __init__(self, message: str, column: int, *, exact: bool = False):
        super().__init__(message)
        self.column = column  # 0-based offset in the expression text
        # Reported at that column of the spec, not at the start of the expression (so far
        # only errors about one literal: runner/check/arith.py's _can_hold).
        self.exact = exact


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def number(t: Token) -> int:
    digits = t.text.lstrip("-")
    if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX":
        raise ExprError(f"{t.text}: leading zeros are not allowed (C would read "
                        "octal); write the decimal value or 0x...", t.pos)
    if len(digits) > 40:
        raise ExprError(f"{t.text[:20]}... does not fit in 64 bits", t.pos)
    value = int(t.text, 0)
    if not -(2**63) <= value < 2**64:
        raise ExprError(f"{t.text} does not fit in 64 bits", t.pos)
    return value
