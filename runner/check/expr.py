"""Conditions for `if` actions: a tiny, closed expression language.

    cond := or ; or := and ('||' and)* ; and := not ('&&' not)*
    not  := '!' not | '(' cond ')' | cmp ; cmp := operand OP operand
    operand := built-in name | integer (decimal or 0x hex, optional '-')

The result is a tree of runner/model/expr.py nodes built from the parsed tokens only
(built-ins by name, integers by value); codegen spells it in C.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple, Union

from runner.kinds.builtins import BUILTINS
from runner.model.expr import BuiltinRef, Compare, Condition, Const, Group, Logic, Not
from runner.model.types import SCALARS

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?0[xX][0-9a-fA-F]+|-?[0-9]+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\)))"
)
COMPARE = ("==", "!=", "<=", ">=", "<", ">")


class ExprError(ValueError):
    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column  # 0-based offset in the expression text


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> List[Token]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"unexpected character {text[pos:].lstrip()[:1]!r}",
                            len(text) - len(text[pos:].lstrip()))
        kind = m.lastgroup or "op"
        out.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def parse_condition(text: str, check_name: Callable[[str, int], None]
                    ) -> Tuple[Condition, List[str]]:
    """Return the condition's tree and the built-in names it uses.

    `check_name(name, column)` raises ExprError for a name that is not a usable built-in.
    """
    toks = tokenize(text)
    if not toks:
        raise ExprError("empty condition", 0)
    parser = _Parser(text, toks, check_name)
    cond = parser.parse_or()
    if (t := parser.peek()) is not None:
        raise ExprError(f"unexpected {t.text!r}", t.pos)
    return cond, parser.used


class _Parser:
    def __init__(self, text: str, toks: List[Token], check_name: Callable[[str, int], None]):
        self.text = text
        self.toks = toks
        self.pos = 0
        self.check_name = check_name
        self.used: List[str] = []

    def peek(self) -> Optional[Token]:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise ExprError("the condition ends too early", len(self.text))
        self.pos += 1
        return t

    def parse_or(self) -> Condition:
        return self._chain("||", self.parse_and)

    def parse_and(self) -> Condition:
        return self._chain("&&", self.parse_not)

    def _chain(self, op: str, parse_part: Callable[[], Condition]) -> Condition:
        """One or more parts joined by `op`: a || b || c, a && b."""
        parts = [parse_part()]
        while (t := self.peek()) and t.text == op:
            self.take()
            parts.append(parse_part())
        return parts[0] if len(parts) == 1 else Logic(op, tuple(parts))

    def parse_not(self) -> Condition:
        t = self.take()
        if t.text == "!":
            return Not(self.parse_not())
        if t.text == "(":
            inner = self.parse_or()
            close = self.take()
            if close.text != ")":
                raise ExprError("expected ')'", close.pos)
            return Group(inner)
        left = self.operand(t)
        op = self.take()
        if op.text not in COMPARE:
            raise ExprError(f"expected a comparison ({' '.join(COMPARE)}), got {op.text!r}",
                            op.pos)
        right_tok = self.take()
        right = self.operand(right_tok)
        _never_negative(left, op.text, right, right_tok if isinstance(right, Const) else t)
        return Compare(op.text, left, right)

    def operand(self, t: Token) -> Union[Const, BuiltinRef]:
        if t.kind == "num":
            return Const(_number(t))
        if t.kind == "name":
            self.used.append(t.text)
            self.check_name(t.text, t.pos)
            return BuiltinRef(t.text)
        raise ExprError(f"expected a built-in or a number, got {t.text!r}", t.pos)


def _number(t: Token) -> int:
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


def _never_negative(left: Union[Const, BuiltinRef], op: str,
                    right: Union[Const, BuiltinRef], literal: Token) -> None:
    """Refuse an unsigned built-in compared with a negative number where C gets it wrong
    or the answer never depends on the built-in. C converts the number to a u64 for a u64
    built-in, so `ktime > -1` is always false (`arg0 == -1` keeps its two's complement
    meaning and passes); a narrower built-in is widened to s64, so any comparison with a
    negative number is constant."""
    b, c = (left, right) if isinstance(left, BuiltinRef) else (right, left)
    if not (isinstance(b, BuiltinRef) and isinstance(c, Const) and c.value < 0):
        return
    builtin = BUILTINS.get(b.name)
    scalar = SCALARS.get(builtin.type) if builtin else None
    if scalar is None or scalar.signed or (scalar.size == 8 and op in ("==", "!=")):
        return
    why = " (and C would compare them as unsigned numbers)" if scalar.size == 8 else ""
    raise ExprError(f"'{b.name}' is a {scalar.name}, never negative: comparing it with "
                    f"{c.value} does not depend on its value{why}", literal.pos)
