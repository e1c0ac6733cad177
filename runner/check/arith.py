"""Values and conditions written as text: arithmetic, casts, comparisons, strings.

    expr    := binary expression over unary, C's precedence:
               || && | ^ & (== !=) (< <= > >=) (<< >>) (+ -) (* / %)
    unary   := '!' unary | '-' unary | '(' TYPE ')' unary | primary
    primary := NUMBER | "STRING" | NAME | NAME.NAME... | startswith(expr, "STRING")
               | '(' expr ')'

C's own integer rules are replaced by explicit ones, so no value changes silently:
- arithmetic is done in 64 bits: in u64 if an operand is a u64, else in s64; a signed
  operand beside a u64 must be cast first (C would turn -1 into 2^64-1), and a negative
  constant cannot meet an unsigned value;
- a comparison of a signed and an unsigned value is done in s64 when both fit (C would
  compare an int with an unsigned int as unsigned);
- division or modulo by a constant zero, and shifts by a constant outside 0..63, are
  refused; `(u8)x` truncates, as written; `x & MASK` with a constant mask is typed as the
  narrowest unsigned type holding the mask (its value cannot exceed it).
Names are resolved by the caller (`resolve(name, column)`), which knows the built-ins,
the record's fields, the `let` values and the parameters in scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, List, Optional

from runner.check.expr import ExprError, Token, number
from runner.model import expr as e
from runner.model.types import SCALARS, TypeRef


@dataclass(frozen=True)
class Typed:
    """A parsed value: its node and what it is. `scalar` is an integer type name, "bool"
    for a condition, or None for a string or an integer array (whose node is an
    ArraySource); `string` says how to read it as text (a string, or a pointer to one)."""

    node: object
    scalar: Optional[str]
    string: Optional[e.StrSource] = None
    pos: int = -1  # a literal's column (its '-' for a negative one), for messages
    stack: Optional[TypeRef] = None  # a stack field read back: its kind and depth

    @property
    def is_int(self) -> bool:
        return self.scalar is not None and self.scalar != "bool"

    @property
    def is_const(self) -> bool:
        return isinstance(self.node, e.Const)

    @property
    def array(self) -> Optional[e.ArraySource]:
        return self.node if isinstance(self.node, e.ARRAY_SOURCES) else None

    def kind(self) -> str:
        """What a value that is not a number is, for messages."""
        if self.scalar == "bool":
            return "a comparison"
        if self.stack is not None:
            return f"a stack ({self.stack})"
        if self.array is not None:
            return f"an array ({self.array.scalar}[{self.array.count}])"
        return "a number" if self.is_int else "a string"


Resolve = Callable[[str, int], Typed]

_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|[0-9]+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"
    r"|(?P<str>\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<op>==|!=|<=|>=|<<|>>|&&|\|\||[-+*/%&|^<>!(),]))"
)
_LEVELS = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", "<=", ">", ">="),
           ("<<", ">>"), ("+", "-"), ("*", "/", "%")]
_LEVEL = {op: i for i, ops in enumerate(_LEVELS) for op in ops}
COMPARE = ("==", "!=", "<", "<=", ">", ">=")


def tokenize(text: str) -> List[Token]:
    out, pos = [], 0
    while text[pos:].strip():
        m = _TOKEN.match(text, pos)
        if not m:
            rest = text[pos:].lstrip()
            raise ExprError(f"unexpected character {rest[:1]!r}", len(text) - len(rest))
        kind = m.lastgroup or "op"
        out.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return out


def parse(text: str, resolve: Resolve) -> Typed:
    toks = tokenize(text)
    if not toks:
        raise ExprError("empty expression", 0)
    p = _Parser(text, toks, resolve)
    out = p.binary(0)
    if (t := p.peek()) is not None:
        raise ExprError(f"unexpected {t.text!r}", t.pos)
    return out


def parse_condition(text: str, resolve: Resolve) -> e.Condition:
    out = parse(text, resolve)
    if out.scalar != "bool":
        raise ExprError("expected a comparison (== != < <= > >=), e.g. 'pid == 42'", 0)
    return out.node  # type: ignore[return-value]


class _Parser:
    def __init__(self, text: str, toks: List[Token], resolve: Resolve):
        self.text, self.toks, self.pos, self.resolve = text, toks, 0, resolve

    def peek(self) -> Optional[Token]:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise ExprError("the expression ends too early", len(self.text))
        self.pos += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text:
            raise ExprError(f"expected {text!r}, got {t.text!r}", t.pos)

    def binary(self, level: int) -> Typed:
        if level == len(_LEVELS):
            return self.unary()
        left = self.binary(level + 1)
        parts = [left]
        while (t := self.peek()) and t.kind == "op" and _LEVEL.get(t.text) == level:
            self.take()
            right = self.binary(level + 1)
            if t.text not in ("&&", "||"):
                left = combine(t, left, right)
                continue
            if left.scalar != "bool" or right.scalar != "bool":
                raise ExprError(f"'{t.text}' joins comparisons, e.g. 'pid == 1 {t.text} "
                                "uid == 0'", t.pos)
            parts.append(right)
        if len(parts) > 1:
            conds = tuple(x.node for x in parts)
            return Typed(e.Logic(_LEVELS[level][0], conds), "bool")  # type: ignore[arg-type]
        return left

    def unary(self) -> Typed:
        t = self.take()
        if t.text == "!":
            inner = self.unary()
            if inner.scalar != "bool":
                raise ExprError("'!' applies to a comparison", t.pos)
            return Typed(e.Not(inner.node), "bool")  # type: ignore[arg-type]
        if t.text == "-":
            return negate(t, self.unary())
        if t.text == "(":
            nxt = self.peek()
            if nxt and nxt.text in SCALARS and self._is_cast():
                self.take()
                self.expect(")")
                return cast(t, nxt.text, self.unary())
            inner = self.binary(0)
            self.expect(")")
            if inner.scalar == "bool":
                return Typed(e.Group(inner.node), "bool")  # type: ignore[arg-type]
            return inner
        return self.primary(t)

    def _is_cast(self) -> bool:
        after = self.toks[self.pos + 1] if self.pos + 1 < len(self.toks) else None
        return after is not None and after.text == ")"

    def primary(self, t: Token) -> Typed:
        if t.kind == "num":
            return Typed(e.Const(number(t)), "s64" if number(t) < 2**63 else "u64", pos=t.pos)
        if t.kind == "str":
            return Typed(_unquote(t.text), None, pos=t.pos)
        if t.kind == "name" and t.text == "startswith":
            return self.startswith(t)
        if t.kind == "name":
            return self.resolve(t.text, t.pos)
        raise ExprError(f"expected a value, got {t.text!r}", t.pos)

    def startswith(self, t: Token) -> Typed:
        self.expect("(")
        subject = self.binary(0)
        self.expect(",")
        prefix = self.binary(0)
        self.expect(")")
        text = prefix.node
        if not isinstance(text, (str, e.ParamStr)) or subject.string is None:
            raise ExprError("startswith takes a string value and a \"literal\" (or a string "
                            "parameter)", t.pos)
        if isinstance(text, str):
            _can_hold(subject.string, text, prefix.pos, "start with")
        return Typed(e.StrCompare(subject.string, text, False, True), "bool")


def _is_text(v: Typed) -> bool:
    """A string known when the program is rendered: a "literal" or a string parameter."""
    return isinstance(v.node, (str, e.ParamStr))


def _unquote(text: str) -> str:
    """A "literal" without its quotes; \\" and \\\\ are the only escapes."""
    return re.sub(r"\\(.)", r"\1", text[1:-1])


def negate(t: Token, v: Typed) -> Typed:
    if isinstance(v.node, e.Const):
        return Typed(e.Const(-v.node.value), "s64", pos=t.pos)
    _need_int(t, v)
    if v.scalar == "u64":
        raise ExprError("'-' of a u64 would wrap: cast it to s64 first", t.pos)
    return Typed(e.Negate(v.node, "s64"), "s64")  # type: ignore[arg-type]


def cast(t: Token, scalar: str, v: Typed) -> Typed:
    _need_int(t, v)
    return Typed(e.Cast(scalar, v.node), scalar)  # type: ignore[arg-type]


def _need_int(t: Token, v: Typed) -> None:
    if not v.is_int:
        raise ExprError(f"'{t.text}' needs a number, not {v.kind()}", t.pos)


def _signed(v: Typed) -> bool:
    return v.scalar is not None and SCALARS[v.scalar].signed


def combine(t: Token, a: Typed, b: Typed) -> Typed:
    if t.text in ("==", "!=") and (_is_text(a) or _is_text(b)):
        return _string_compare(t, a, b)
    _need_int(t, a)
    _need_int(t, b)
    if t.text in COMPARE:
        return _compare(t, a, b)
    if t.text in ("/", "%") and isinstance(b.node, e.Const) and b.node.value == 0:
        raise ExprError(f"'{t.text}' by zero", t.pos)
    if t.text in ("<<", ">>") and isinstance(b.node, e.Const) and not 0 <= b.node.value < 64:
        raise ExprError(f"shift by {b.node.value}: only 0..63 is defined", t.pos)
    if t.text == ">>":
        return _shift_right(a, b)
    wide = "u64" if "u64" in (a.scalar, b.scalar) else "s64"
    if wide == "u64":
        for v in (a, b):
            _fits_unsigned(t, v)
    node = e.Binary(t.text, a.node, b.node, wide)  # type: ignore[arg-type]
    return Typed(node, _masked(t, b) or _masked(t, a) or wide)


def _shift_right(a: Typed, b: Typed) -> Typed:
    """`x >> n` lies within x's own type (C's result type is x's after promotion, and a
    right shift never leaves its range): a u32 shifted stays a u32 and fits a u32 field
    uncast. Computed in 64 bits, in the left operand's signedness (the count's does not
    matter, as in C): for a signed x the shift is arithmetic, as clang's."""
    wide = "u64" if a.scalar == "u64" else "s64"
    return Typed(e.Binary(">>", a.node, b.node, wide), a.scalar)  # type: ignore[arg-type]


def _masked(t: Token, mask: Typed) -> Optional[str]:
    """`x & 0xff` is computed in 64 bits but lies in 0..0xff whatever x is (two's
    complement), so it is typed as the narrowest unsigned type holding the mask and fits a
    narrower field without a cast."""
    if t.text != "&" or not isinstance(mask.node, e.Const) or mask.node.value < 0:
        return None
    return next((n for n in ("u8", "u16", "u32") if mask.node.value < 2 ** SCALARS[n].bits),
                None)


def _fits_unsigned(t: Token, v: Typed) -> None:
    if isinstance(v.node, e.Const):
        if v.node.value < 0:
            raise ExprError(f"{v.node.value} is negative but the other side of '{t.text}' is "
                            "unsigned (u64): cast that side, e.g. (s64)x", t.pos)
    elif _signed(v):
        raise ExprError(f"'{t.text}' mixes a signed {v.scalar} and an unsigned u64 (C would "
                        "read a negative value as a huge one): cast one side", t.pos)


def _compare(t: Token, a: Typed, b: Typed) -> Typed:
    for x, y in ((a, b), (b, a)):
        if isinstance(x.node, e.Const) and x.node.value < 0 and not y.is_const:
            _never_negative(t.text, y, x.node.value, x.pos)
    left, right = a.node, b.node
    if not a.is_const and not b.is_const and _signed(a) != _signed(b):
        unsigned = b if _signed(a) else a
        if unsigned.scalar == "u64":
            raise ExprError(f"'{t.text}' compares a signed and an unsigned u64: cast one "
                            "side", t.pos)
        left, right = e.Cast("s64", left), e.Cast("s64", right)  # type: ignore[arg-type]
    return Typed(e.Compare(t.text, left, right), "bool")  # type: ignore[arg-type]


def _never_negative(op: str, v: Typed, value: int, pos: int) -> None:
    """Refuse an unsigned value compared with a negative number where C gets it wrong or
    the answer never depends on the value. C converts the number to a u64 for a u64 value,
    so `ktime > -1` is always false (`arg0 == -1` keeps its two's complement meaning and
    passes); a narrower value is widened to s64, so any comparison with a negative number
    is constant. Cast the value to a signed type to compare it as one."""
    assert v.scalar is not None
    scalar = SCALARS[v.scalar]
    if scalar.signed or (scalar.size == 8 and op in ("==", "!=")):
        return
    name = f"'{v.node.name}'" if isinstance(v.node, e.BuiltinRef) else "the value"
    why = " (and C would compare them as unsigned numbers)" if scalar.size == 8 else ""
    raise ExprError(f"{name} is a {scalar.name}, never negative: comparing it with {value} "
                    f"does not depend on its value{why}", pos)


def _string_compare(t: Token, a: Typed, b: Typed) -> Typed:
    lit, other = (a, b) if _is_text(a) else (b, a)
    if _is_text(other):  # `params.comm == ""`: a test of the value given
        param, text = (lit, other) if isinstance(lit.node, e.ParamStr) else (other, lit)
        if not isinstance(param.node, e.ParamStr) or not isinstance(text.node, str):
            raise ExprError(f"'{t.text}' compares two constants: compare a string value "
                            "(comm, a char array, a string argument) with them", t.pos)
        size = param.node.size
        if len(text.node.encode()) >= size:
            raise ExprError(f"'params.{param.node.name}' holds at most {size - 1} bytes: it "
                            f"never equals this {len(text.node.encode())}-byte literal",
                            text.pos)
        return Typed(e.ParamIs(param.node, text.node, t.text == "!="), "bool")
    if not isinstance(lit.node, (str, e.ParamStr)) or other.string is None:
        raise ExprError(f"'{t.text}' compares a string literal (or a string parameter) with "
                        "a string value (comm, a char array, a string argument)", t.pos)
    if isinstance(lit.node, str):
        _can_hold(other.string, lit.node, lit.pos, "equal")
    return Typed(e.StrCompare(other.string, lit.node, t.text == "!=", False), "bool")


def _can_hold(src: e.StrSource, text: str, pos: int, verb: str) -> None:
    """Refuse a literal that a bounded string (comm, a char[N]) can never match: its text
    holds at most N - 1 bytes before the NUL. The comparison could only ever give one
    answer, and a spec that writes it means something else (a name cut at 15 bytes)."""
    size = _capacity(src)
    n = len(text.encode())
    if size is None or n < size:
        return
    what = "the string value"
    if isinstance(src, e.CommStr):
        what = "'comm'"
    elif isinstance(src, e.LocalChars):
        what = f"'{src.name}.{src.field}'"
    raise ExprError(f"{what} is a char[{size}]: it holds at most {size - 1} bytes, so it "
                    f"can never {verb} this {n}-byte literal", pos, exact=True)


def _capacity(src: e.StrSource) -> Optional[int]:
    if isinstance(src, e.CommStr):
        return 16  # TASK_COMM_LEN
    if isinstance(src, (e.RecordChars, e.LocalChars)):
        return src.count
    return None  # a string at an address: as long as it is
