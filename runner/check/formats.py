"""Formats (print texts, event and map-dump formats): placeholders checked against the names
they may use, and the whole format tried on the lowest and highest values it can meet."""

from __future__ import annotations

import re
import string
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

from runner.check.checker import Checker, Skip
from runner.model.spec import Struct
from runner.model.stacks import STACK_PID
from runner.model.types import TypeRef
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean, known

# Widths and precisions past this only pad: `{pid:500000000}` would make every record half
# a gigabyte of spaces (and the check below would build two such strings).
MAX_WIDTH = 1024

# What may follow a placeholder's name: [FIELD] or [INDEX] accessors, nothing else.
_ITEMS = re.compile(r"(?:\[[^\]]*\])*")


def fields(ck: Checker, path: PathKey, text: str, allowed: Set[str], what: str,
           elsewhere: Iterable[str] = (),
           shown_how: Callable[[str], str] = lambda field: "") -> List[str]:
    """The distinct placeholder names of a format, each checked against `allowed`: every bad
    placeholder is reported (at its own column), then Skip. `what` names one of them
    ("built-in", "field of ev"). `elsewhere`: names the language has but this format cannot
    show (and `args.X`), which get no "did you mean" of another name but `shown_how(field)`,
    a hint of how to show one (if not empty)."""
    names: List[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        ck.err(path, f"bad format: {e}", "write {{ and }} for literal braces")
        raise Skip from None
    bad = 0
    starts = iter(_starts(text))
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        at = next(starts, 0)
        problem = _placeholder(field, spec or "", allowed, what, set(elsewhere), shown_how)
        if problem:
            ck.err_in(path, text, at, *problem)
            bad += 1
        elif field.split(".")[0].split("[")[0] not in names:
            names.append(field.split(".")[0].split("[")[0])
    if bad:
        raise Skip
    return names


def pieces(ck: Checker, path: PathKey, text: str
           ) -> List[Tuple[str, Optional[str], str, Optional[str], int]]:
    """A format's pieces: (literal text, field, spec, conversion, offset of the field's
    `{` in `text`), as string.Formatter().parse gives them; a format Python cannot parse is
    reported and Skip."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        ck.err(path, f"bad format: {e}", "write {{ and }} for literal braces")
        raise Skip from None
    starts = iter(_starts(text))
    return [(lit, field, spec or "", conv, next(starts, 0) if field is not None else -1)
            for lit, field, spec, conv in parsed]


def spec_problem(field: str, spec: str) -> Optional[str]:
    """What is wrong with a placeholder's format spec, if anything."""
    if spec and "{" in spec:
        return "nested placeholders in format specs are not supported"
    if spec and any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec)):
        return f"'{{{field}:{spec}}}': a width or precision is at most {MAX_WIDTH}"
    return None


def items_ok(field: str, base: str) -> bool:
    """Whether what follows a placeholder's name is [FIELD] or [INDEX] accessors only."""
    return _ITEMS.fullmatch(field, len(base)) is not None


NOT_A_FIELD = ("a placeholder is a name, then [FIELD] of a struct or [INDEX] of an array",
               "e.g. {key[pid]} or {addr[0]}; attributes (.NAME) are not fields")


def _placeholder(field: str, spec: str, allowed: Set[str], what: str, elsewhere: Set[str],
                 shown_how: Callable[[str], str]) -> Optional[Tuple[str, Optional[str]]]:
    """What is wrong with one placeholder (message, hint), if anything."""
    base = field.split(".")[0].split("[")[0]
    if base == "" or base.isdigit():
        return "placeholders must be named, e.g. {pid}", None
    if base not in allowed:
        return f"'{{{field}}}' names no {what}", _hint(field, base, allowed, what, elsewhere,
                                                        shown_how)
    if not items_ok(field, base):
        # str.format would read any attribute (`{comm.upper}`, `{pid.__class__}`) and
        # print Python's internals: only fields and elements are values of a record.
        return f"'{{{field}}}' is not a field: {NOT_A_FIELD[0]}", NOT_A_FIELD[1]
    problem = spec_problem(field, spec)
    return (problem, None) if problem else None


def _hint(field: str, base: str, allowed: Set[str], what: str, elsewhere: Set[str],
          shown_how: Callable[[str], str]) -> str:
    """A close name of the same kind, else the known ones: `{args.ret}` names a member of a
    namespace, never a flat name like `arg5`; `{ppid}` is a name of the language (a task
    field) that this format cannot show, not a misspelt `pid`: the hint says how to show it."""
    if base in elsewhere or "." in field:
        how = shown_how(field) if base in elsewhere else ""
        return how or known(_plural(what), allowed)
    return did_you_mean(base, allowed) or known(_plural(what), allowed)


def _plural(what: str) -> str:
    """"built-in" -> "built-ins", "field of ev" -> "fields of ev"."""
    head, sep, tail = what.partition(" ")
    return f"{head}s{sep}{tail}"


def _starts(text: str) -> List[int]:
    """The offset of each placeholder's `{` in `text`, in the order string.Formatter().parse
    yields them (`{{` and `}}` are literal braces; a spec may nest one level of braces)."""
    out: List[int] = []
    i = 0
    while i < len(text):
        if text.startswith(("{{", "}}"), i):
            i += 2
            continue
        if text[i] == "{":
            out.append(i)
            depth = 0
            while i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
        i += 1
    return out


def try_format(ck: Checker, path: PathKey, fmt: str, *samples: Dict[str, Any]) -> None:
    """Try the format on the lowest and the highest values its fields can take."""
    for sample in samples:
        try:
            fmt.format_map(sample)
        except (ValueError, KeyError, IndexError, TypeError, AttributeError,
                OverflowError) as e:
            ck.err(path, f"format cannot be applied: {e}")
            raise Skip from None


def default_format(struct: Struct) -> str:
    return " ".join(f"{f.name}={{{f.name}}}" for f in struct.layout.fields
                    if f.name != STACK_PID)


def sample_value(t: TypeRef, structs: Dict[str, Struct], high: bool = False) -> Any:
    """A value shaped like what the decoder produces for `t`, to try formats on: the
    type's lowest value, or with `high` its highest (`{ktime:c}` passes with 0 only)."""
    if t.is_string:
        return "x" * ((t.count or 1) - 1) if high else ""
    if t.is_stack:  # as the runtime formats one (runner/output/stacks.py): text lines
        return "\n        f+1\n" if high else ""
    if t.is_struct:
        one: Any = sample_record(structs[t.base], structs, high)
    else:
        assert t.scalar is not None
        one = t.scalar.max if high else t.scalar.min
    return [one] * t.count if t.count is not None else one


def sample_record(struct: Struct, structs: Dict[str, Struct],
                  high: bool = False) -> Dict[str, Any]:
    return {f.name: sample_value(f.type, structs, high) for f in struct.layout.fields}
