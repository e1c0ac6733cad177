"""Formats (print texts, event and map-dump formats): placeholders checked against the names
they may use, and the whole format tried on the lowest and highest values it can meet."""

from __future__ import annotations

import re
import string
from typing import Any, Dict, List, Set

from runner.check.checker import Checker, Skip
from runner.model.spec import Struct
from runner.model.types import TypeRef
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean, known

# Widths and precisions past this only pad: `{pid:500000000}` would make every record half
# a gigabyte of spaces (and the check below would build two such strings).
MAX_WIDTH = 1024

# What may follow a placeholder's name: [FIELD] or [INDEX] accessors, nothing else.
_ITEMS = re.compile(r"(?:\[[^\]]*\])*")


def fields(ck: Checker, path: PathKey, text: str, allowed: Set[str], what: str) -> List[str]:
    """The distinct placeholder names of a format, each checked against `allowed`."""
    names: List[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        ck.err(path, f"bad format: {e}", "write {{ and }} for literal braces")
        raise Skip from None
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        base = field.split(".")[0].split("[")[0]
        at = "{" + field
        if base == "" or base.isdigit():
            ck.err(path, "placeholders must be named, e.g. {pid}", within=at)
            raise Skip
        if base not in allowed:
            ck.err(path, f"'{{{field}}}' names no {what}",
                   did_you_mean(base, allowed) or known(f"{what}s", allowed), within=at)
            raise Skip
        if _ITEMS.fullmatch(field, len(base)) is None:
            # str.format would read any attribute (`{comm.upper}`, `{pid.__class__}`) and
            # print Python's internals: only fields and elements are values of a record.
            ck.err(path, f"'{{{field}}}' is not a field: a placeholder is a name, then "
                   "[FIELD] of a struct or [INDEX] of an array", "e.g. {key[pid]} or "
                   "{addr[0]}; attributes (.NAME) are not fields", within=at)
            raise Skip
        if spec and "{" in spec:
            ck.err(path, "nested placeholders in format specs are not supported")
            raise Skip
        if spec and any(int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec)):
            ck.err(path, f"'{{{field}:{spec}}}': a width or precision is at most {MAX_WIDTH}")
            raise Skip
        if base not in names:
            names.append(base)
    return names


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
    return " ".join(f"{f.name}={{{f.name}}}" for f in struct.layout.fields)


def sample_value(t: TypeRef, structs: Dict[str, Struct], high: bool = False) -> Any:
    """A value shaped like what the decoder produces for `t`, to try formats on: the
    type's lowest value, or with `high` its highest (`{ktime:c}` passes with 0 only)."""
    if t.is_string:
        return "x" * ((t.count or 1) - 1) if high else ""
    if t.is_struct:
        one: Any = sample_record(structs[t.base], structs, high)
    else:
        assert t.scalar is not None
        one = t.scalar.max if high else t.scalar.min
    return [one] * t.count if t.count is not None else one


def sample_record(struct: Struct, structs: Dict[str, Struct],
                  high: bool = False) -> Dict[str, Any]:
    return {f.name: sample_value(f.type, structs, high) for f in struct.layout.fields}
