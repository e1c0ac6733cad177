"""The tests section: cases `ebpf-run test` runs. Checked like every other section, so a
broken case is a located spec error and not a surprise in the middle of a test run.

What is checked here: exactly one record kind per expectation, the channel, map and field
names it uses (with hints), regexes that compile, captures that are declared before they
are used, the kernel features a case requires, and run parameters the spec declares.
"""

from __future__ import annotations

import contextlib
import re
import string
from typing import Any, Dict, List, Optional, Sequence, Tuple

from runner.check.checker import Checker, Skip
from runner.kinds.expectations import EXPECTATIONS
from runner.kinds.maps import MAP_KINDS
from runner.model.tests import (
    FEATURES,
    Capture,
    Condition,
    Count,
    Expectation,
    FieldMatch,
    FieldRef,
    Operand,
    RunOptions,
    Template,
    TestCase,
    Trigger,
)
from runner.spec.loader import PathKey
from runner.support.regexes import compile_pattern

KINDS = EXPECTATIONS.names()
ATTACH_FIELDS = ("method", "optional", "skipped")
OPS = ("eq", "ne", "lt", "le", "gt", "ge", "regex", "one_of")
ORDERED = ("lt", "le", "gt", "ge")
DEFAULT_TIMEOUT = 10.0
# Triggers are shell commands run by a root process: they run as nobody unless the case
# names a user (`user: 0` for root), so a spec from elsewhere cannot run what it likes as
# root without saying so.
NOBODY = 65534
_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Fields every map record may carry: a dump's entries, or one aggregation record per key.
MAP_FIELDS = ("key", "value", "kind", "unit", "count", "sum", "avg", "min", "max", "buckets")


def check(ck: Checker) -> Tuple[TestCase, ...]:
    cases = []
    for name, raw in ck.data.get("tests", {}).items():
        with contextlib.suppress(Skip):
            cases.append(_case(ck, ("tests", name), name, raw))
    return tuple(cases)


def _case(ck: Checker, path: PathKey, name: str, raw: Dict[str, Any]) -> TestCase:
    trigger = _trigger(ck, (*path, "trigger"), raw["trigger"])
    names = {n for n, _ in trigger.captures}
    requires = tuple(raw.get("requires", ()))
    for i, feature in enumerate(requires):
        if feature not in FEATURES:
            ck.unknown((*path, "requires", i), "kernel feature", feature, FEATURES)
    expect = []
    for i, e in enumerate(raw["expect"]):
        with contextlib.suppress(Skip):
            expect.append(_expectation(ck, (*path, "expect", i), e, names))
    return TestCase(name, ck.origin(path), trigger, _options(ck, (*path, "run"),
                    raw.get("run", {})), requires, tuple(expect))


def _trigger(ck: Checker, path: PathKey, raw: Dict[str, Any]) -> Trigger:
    if ("command" in raw) == ("shell" in raw):
        ck.err(path, "a trigger needs exactly one of 'command' (an argv list) or 'shell' "
                     "(a script for /bin/sh -c)")
        raise Skip
    argv = tuple(raw["command"]) if "command" in raw else ("/bin/sh", "-c", raw["shell"])
    captures = []
    for cname, pattern in raw.get("capture", {}).items():
        rx = _regex(ck, (*path, "capture", cname), pattern)
        if rx is not None and rx.groups != 1:
            ck.err((*path, "capture", cname), f"capture '{cname}' needs exactly one group "
                   f"(...) in its regex, which has {rx.groups}", "e.g. '^(\\d+)$'")
        captures.append((cname, pattern))
    return Trigger(argv, raw.get("user", NOBODY), float(raw.get("timeout", DEFAULT_TIMEOUT)),
                   tuple(captures))


def _options(ck: Checker, path: PathKey, raw: Dict[str, Any]) -> RunOptions:
    for pname in raw.get("set", {}):
        if pname not in ck.params:
            ck.unknown((*path, "set", pname), "param", pname, ck.params, key=True)
    settle = raw.get("settle", RunOptions.settle)
    return RunOptions(raw.get("count"), raw.get("duration"), float(settle),
                      tuple((k, _param_text(v)) for k, v in raw.get("set", {}).items()))


def _param_text(v: Any) -> str:
    """A --set value as the command line spells it; the run checks its range."""
    return str(v)


def _expectation(ck: Checker, path: PathKey, raw: Dict[str, Any],
                 captures: set) -> Expectation:
    kinds = [k for k in KINDS if k in raw]
    if len(kinds) != 1:
        ck.err(path, "an expectation names exactly one of: " + ", ".join(KINDS),
               f"this one names {', '.join(kinds)}" if kinds else None)
        raise Skip
    kind = kinds[0]
    names = EXPECTATIONS.lookup(kind).target  # what the expectation's value names
    where = list(_where(ck, (*path, "where"), raw.get("where", {}), captures))
    if not names:  # lost: a count
        if "where" in raw or "count" in raw:
            ck.err(path, "'lost' takes its count as its value (lost: 0), not 'where' or "
                         "'count'")
        return Expectation("lost", "", (), _count(ck, (*path, "lost"), raw["lost"]),
                           ck.origin(path))
    target = ""
    if names == "text":
        # The text is a condition like any field's: `message: Hello` or `message: {regex: ..}`
        where.insert(0, _field(ck, (*path, "message"), ("text",), raw["message"], captures))
        _message_fields(ck, path, where)
    elif names == "probe":
        target = raw[kind]
        _attach_fields(ck, path, target, where)
    else:
        target = raw[kind]
        _target_fields(ck, path, kind, names, target, where)
    count = _count(ck, (*path, "count"), raw.get("count", {"at_least": 1}))
    return Expectation(kind, target, tuple(where), count, ck.origin(path))


def _count(ck: Checker, path: PathKey, raw: Any) -> Count:
    if isinstance(raw, int):
        return Count("exactly", raw)
    (op, n), = raw.items()  # the schema allows exactly one of exactly, at_least, at_most
    return Count(op, n)


# -- where: field -> value or conditions ---------------------------------------------------

def _where(ck: Checker, path: PathKey, raw: Dict[str, Any],
           captures: set) -> List[FieldMatch]:
    out: List[FieldMatch] = []
    for name, value in raw.items():
        out.extend(_fields(ck, (*path, name), (name,), value, captures))
    return out


def _fields(ck: Checker, path: PathKey, field: Tuple[str, ...], raw: Any,
            captures: set) -> List[FieldMatch]:
    """A struct value nests: `key: {comm: sh}` is a condition on key.comm."""
    if isinstance(raw, dict) and raw and not (set(raw) & set(OPS)) and set(raw) != {"field"}:
        out: List[FieldMatch] = []
        for sub, value in raw.items():
            out.extend(_fields(ck, (*path, sub), (*field, sub), value, captures))
        return out
    return [_field(ck, path, field, raw, captures)]


def _field(ck: Checker, path: PathKey, field: Tuple[str, ...], raw: Any,
           captures: set) -> FieldMatch:
    if isinstance(raw, list):
        ck.err(path, "a list is not a value to compare with", "for any of several values "
                     "use {one_of: [a, b]}")
        return FieldMatch(field, ())
    if raw == {}:
        ck.err(path, "an empty condition tests nothing", "give a value, or {op: value}")
        return FieldMatch(field, ())
    if not isinstance(raw, dict) or set(raw) == {"field"}:
        return FieldMatch(field, (Condition("eq", _operand(ck, path, raw, captures)),))
    conditions = []
    for op, value in raw.items():
        if op not in OPS:
            ck.err((*path, op), f"'{op}' mixes a field name with comparisons",
                   "compare with: " + ", ".join(OPS), key=True)
            continue
        conditions.append(_condition(ck, (*path, op), op, value, captures))
    return FieldMatch(field, tuple(conditions))


def _condition(ck: Checker, path: PathKey, op: str, raw: Any, captures: set) -> Condition:
    if op == "one_of":
        if not isinstance(raw, list) or not raw:
            ck.err(path, "one_of takes a list of values")
            return Condition(op, ())
        return Condition(op, tuple(_operand(ck, (*path, i), v, captures)
                                   for i, v in enumerate(raw)))
    if op == "regex":
        # Taken literally: a regex's own braces (\d{3}) are not captures.
        if not isinstance(raw, str):
            ck.err(path, "a regex is text")
        else:
            _regex(ck, path, raw)
        return Condition(op, str(raw))
    operand = _operand(ck, path, raw, captures)
    if op in ORDERED and not (isinstance(operand, (Capture, FieldRef)) or
                              (isinstance(operand, (int, float)) and
                               not isinstance(operand, bool))):
        ck.err(path, f"'{op}' compares numbers; {raw!r} is not one")
    return Condition(op, operand)


def _operand(ck: Checker, path: PathKey, raw: Any, captures: set) -> Operand:
    if isinstance(raw, dict):
        if set(raw) != {"field"} or not isinstance(raw["field"], str):
            ck.err(path, "a value to compare with is a scalar, a capture '{name}' or "
                         "{field: other_field}")
            return None
        return FieldRef(tuple(raw["field"].split(".")))
    if not isinstance(raw, str) or ("{" not in raw and "}" not in raw):
        return raw  # type: ignore[no-any-return]
    whole = _CAPTURE.fullmatch(raw)
    names = _template_names(ck, path, raw)
    for n in names:
        if n not in captures:
            ck.unknown(path, "capture", n, captures)
    if whole:
        return Capture(whole.group(1))
    return Template(raw, tuple(names))


def _template_names(ck: Checker, path: PathKey, text: str) -> List[str]:
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as e:
        ck.err(path, f"bad braces in {text!r}: {e}", "write a literal brace as {{ or }}")
        return []
    names = []
    for _, name, spec, conv in parts:
        if name is None:
            continue
        if not _CAPTURE.fullmatch("{" + name + "}") or spec or conv:
            ck.err(path, f"'{{{name}}}' is not a capture reference",
                   "captures are plain names, {pid}; a literal brace is {{ or }}")
            continue
        names.append(name)
    return names


def _regex(ck: Checker, path: PathKey, pattern: str) -> Optional[re.Pattern[str]]:
    try:
        return compile_pattern(pattern)  # as the test run will search it
    except re.error as e:
        ck.err(path, f"bad regex {pattern!r}: {e}")
        return None


# -- names the records will carry ----------------------------------------------------------

def _target_fields(ck: Checker, path: PathKey, kind: str, what: str, target: str,
                   where: List[FieldMatch]) -> None:
    """`what`: "map" (a dumped map or an aggregation) or "buffer" (a channel's events)."""
    if what == "map" and target in ck.aggregations:
        _check_names(ck, path, where, MAP_FIELDS)  # one record per key, see MAP_FIELDS
        return
    m = ck.maps.get(target)
    if m is None:
        ck.unknown((*path, kind), "map", target,
                   [*ck.maps, *(ck.aggregations if what == "map" else ())])
        return
    buffer = MAP_KINDS.lookup(m.kind).is_buffer
    if what == "buffer" and not buffer:
        ck.not_a((*path, kind), target, "buffer (perf_event_array or ringbuf)")
        return
    if what == "map" and (buffer or m.kind == "prog_array"):
        ck.err((*path, kind), f"map '{target}' is a {m.kind}: it is never dumped",
               "expect its records with `event:`" if buffer else None)
        return
    if what == "buffer":
        struct = ck.structs.get(m.value.base) if m.value is not None else None
        names = [f.name for f in struct.layout.fields] if struct else []
    else:
        names = list(MAP_FIELDS)
    _check_names(ck, path, where, names)


def _check_names(ck: Checker, path: PathKey, where: List[FieldMatch],
                 names: Sequence[str]) -> None:
    for fm in where:
        if names and fm.path[0] not in names:
            ck.unknown((*path, "where", fm.path[0]), "field", fm.path[0], names, key=True)


def _attach_fields(ck: Checker, path: PathKey, probe: str,
                   where: List[FieldMatch]) -> None:
    probes = ck.data.get("probes", {})
    if probe not in probes:
        ck.unknown((*path, "attach"), "probe", probe, probes)
    for fm in where:
        if fm.path[0] not in ATTACH_FIELDS:
            ck.unknown((*path, "where", fm.path[0]), "field", fm.path[0], ATTACH_FIELDS,
                       key=True)


def _message_fields(ck: Checker, path: PathKey, where: List[FieldMatch]) -> None:
    if not ck.messages:
        ck.err((*path, "message"), "this spec prints no messages", "expect `event:` records")
        return
    names = {"text"}
    for msg in ck.messages:
        names.update(msg.data_keys)  # a print's JSON keys (ret for {args.ret})
    for fm in where[1:]:
        if fm.path[0] not in names:
            ck.unknown((*path, "where", fm.path[0]), "field", fm.path[0], sorted(names),
                       key=True)
