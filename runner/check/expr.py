"""Conditions for `if` actions: a tiny, closed expression language.

    cond := or ; or := and ('||' and)* ; and := not ('&&' not)*
    not  := '!' not | '(' cond ')' | cmp ; cmp := operand OP operand
    operand := built-in name | integer (decimal or 0x hex, optional '-')

The C is assembled from the parsed tokens only (built-ins become their C
expressions), so nothing from the spec reaches the C unchecked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Tuple

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


def compile_condition(text: str, operand: Callable[[str, int], str]) -> Tuple[str, List[str]]:
    """Return the C for `text` and the built-in names it uses.

    `operand(name, column)` returns a built-in's C expression or raises ExprError.
    """
    toks = tokenize(text)
    if not toks:
        raise ExprError("empty condition", 0)
    used: List[str] = []
    pos = 0

    def peek() -> Token | None:
        return toks[pos] if pos < len(toks) else None

    def take() -> Token:
        nonlocal pos
        t = peek()
        if t is None:
            raise ExprError("the condition ends too early", len(text))
        pos += 1
        return t

    def parse_or() -> str:
        parts = [parse_and()]
        while (t := peek()) and t.text == "||":
            take()
            parts.append(parse_and())
        return " || ".join(parts)

    def parse_and() -> str:
        parts = [parse_not()]
        while (t := peek()) and t.text == "&&":
            take()
            parts.append(parse_not())
        return " && ".join(parts)

    def parse_not() -> str:
        t = take()
        if t.text == "!":
            return "!" + parse_not()
        if t.text == "(":
            inner = parse_or()
            close = take()
            if close.text != ")":
                raise ExprError("expected ')'", close.pos)
            return f"({inner})"
        left = parse_operand(t)
        op = take()
        if op.text not in COMPARE:
            raise ExprError(f"expected a comparison ({' '.join(COMPARE)}), got {op.text!r}",
                            op.pos)
        right = parse_operand(take())
        return f"({left} {op.text} {right})"

    def parse_operand(t: Token) -> str:
        if t.kind == "num":
            digits = t.text.lstrip("-")
            if len(digits) > 1 and digits[0] == "0" and digits[1] not in "xX":
                raise ExprError(f"{t.text}: leading zeros are not allowed (C would read "
                                "octal); write the decimal value or 0x...", t.pos)
            if len(digits) > 40:
                raise ExprError(f"{t.text[:20]}... does not fit in 64 bits", t.pos)
            value = int(t.text, 0)
            if not -(2**63) <= value < 2**64:
                raise ExprError(f"{t.text} does not fit in 64 bits", t.pos)
            return f"{value}LL" if value < 2**63 else f"{value}ULL"
        if t.kind == "name":
            used.append(t.text)
            return f"({operand(t.text, t.pos)})"
        raise ExprError(f"expected a built-in or a number, got {t.text!r}", t.pos)

    c = parse_or()
    if (t := peek()) is not None:
        raise ExprError(f"unexpected {t.text!r}", t.pos)
    return c, used
