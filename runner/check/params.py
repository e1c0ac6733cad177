"""The params section: named integers and strings a spec reads as `params.NAME`, set per
run.

    params:
      pid: {type: u32, default: 0, description: only this process (0: all)}
      name: {type: "char[16]", default: "", description: only this command}

A parameter is a constant of the rendered program (`#define er_param_pid ((u32)1234ULL)`),
so clang folds `params.pid == 0` away and the verifier sees no extra map lookup. A string
is a C string literal of exactly N bytes (its text, then NULs), built byte by byte by
runner/codegen/strings.py: no value can end the literal or be read as C. Setting it per
run is `apply`: the CLI parses `--set NAME=VALUE`, calls apply(spec, {NAME: VALUE}) on the
checked model and renders that (the cache key includes the values: support/cache.py).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Dict, Mapping, Optional, Tuple, Union

from runner.check.checker import Checker
from runner.kinds import perf_events
from runner.model.cgroups import CgroupRef
from runner.model.params import Param
from runner.model.spec import Probe, Spec
from runner.model.types import SCALARS
from runner.support.cgroups import FILTER_PARAM, parse_filter_param
from runner.support.comment_text import comment_text

# A string parameter's size: its comparisons are unrolled byte by byte, and its buffer
# is on the 512-byte BPF stack.
MAX_CHARS = 128
_CHARS = re.compile(r"char\[([0-9]{1,4})\]", re.ASCII)
TYPES = ", ".join(SCALARS) + f" or char[N] (a string, N from 2 to {MAX_CHARS})"


def chars_size(type_text: str) -> Optional[int]:
    """N of a `char[N]` parameter type; None for another text."""
    m = _CHARS.fullmatch(type_text)
    return int(m.group(1)) if m else None


def check(ck: Checker) -> Tuple[Param, ...]:
    out = []
    for name, raw in ck.data.get("params", {}).items():
        path = ("params", name)
        type_text, default = raw["type"], raw["default"]
        size = chars_size(type_text) or 0
        if type_text not in SCALARS and not 2 <= size <= MAX_CHARS:
            ck.err((*path, "type"), f"'{type_text}' is not a parameter type: {TYPES}")
            continue
        problem = _problem(default, type_text, size)
        if problem:
            ck.err((*path, "default"), problem)
            continue
        p = Param(name, type_text, default, default, ck.origin(path), size)
        ck.params[name] = p
        out.append(p)
    return tuple(out)


def _problem(value: Union[int, str], type_text: str, size: int) -> str:
    """Why `value` cannot be a `type_text` parameter's value; "" if it can."""
    if size:
        if not isinstance(value, str):
            return f"the default of a {type_text} parameter is a string (in quotes): \"{value}\""
        return _too_long(value, size)
    if not isinstance(value, int):
        return f"a {type_text} parameter's default is an integer"
    return _out_of_range(value, type_text)


def _too_long(text: str, size: int) -> str:
    try:
        n = len(text.encode())
    except UnicodeEncodeError:  # a command line's bytes that are not UTF-8
        return "not UTF-8 text"
    if "\0" in text:
        return "a NUL would end the string"
    return "" if n < size else (f"{n} bytes, more than char[{size}] holds ({size - 1} "
                                "and the NUL)")


def _out_of_range(value: int, scalar: str) -> str:
    lo, hi = SCALARS[scalar].min, SCALARS[scalar].max
    return "" if lo <= value <= hi else f"{value} does not fit in {scalar} ({lo}..{hi})"


# What the docs promise, and only that: Python's int(text, 0) also took 0b11, 0o17, 1_000,
# surrounding spaces and any script's digits ("١٢٣" was 123). A leading 0 is refused: C
# would read 017 as octal.
_VALUE = re.compile(r"[+-]?(?:0|[1-9][0-9]*)|0[xX][0-9a-fA-F]+", re.ASCII)
_MAX_TEXT = 64  # far beyond any u64 or s64; int() of a 5000-digit text is slow, then raises


def parse(name: str, text: str) -> int:
    """The integer a `--set NAME=VALUE` text names: ASCII decimal with an optional sign
    (no leading 0), or 0x and hex digits. Raises ValueError, whose text the CLI prints."""
    if len(text) > _MAX_TEXT or not _VALUE.fullmatch(text):
        shown = text if text.isascii() and text.isprintable() else ascii(text)
        raise ValueError(f"--set {name}={shown[:_MAX_TEXT]}: not an integer (decimal, "
                         "e.g. 1234 or -1, or hex, e.g. 0x4d2)")
    return int(text, 16) if text[:2] in ("0x", "0X") else int(text)


def apply(spec: Spec, values: Dict[str, str]) -> Spec:
    """The model with parameters set from `--set NAME=VALUE` texts (see `parse`; a string
    parameter takes the text as it is), one per name (the CLI keeps the last of repeated
    ones). Raises ValueError, whose text the CLI prints, for an unknown name or a value that
    is no integer or does not fit."""
    values = dict(values)
    cgroup = _cgroup_filter(values.pop(FILTER_PARAM, None))
    known = {p.name: p for p in spec.params}
    for name, text in values.items():
        if name not in known:
            have = ", ".join(sorted(known)) or "none"
            raise ValueError(f"--set {name}: the spec has no parameter '{name}' "
                             f"(parameters: {have})")
        p = known[name]
        value: Union[int, str] = text if p.size else parse(name, text)
        problem = _problem(value, p.scalar, p.size)
        if problem:
            shown = ascii(text) if not (text.isascii() and text.isprintable()) else text
            raise ValueError(f"--set {name}={shown[:_MAX_TEXT]}: {problem}")
        known[name] = replace(p, value=value)
    probes = tuple(_sampling(p, known, values) for p in spec.probes)
    return replace(spec, params=tuple(known[p.name] for p in spec.params), probes=probes,
                   cgroup_filter=cgroup or spec.cgroup_filter)


def _cgroup_filter(text: Optional[str]) -> Optional[CgroupRef]:
    """`--cgroup PATH`, resolved by the CLI into a pair of its own (support/cgroups.py):
    its id and level are constants of the program, as parameters are."""
    if text is None:
        return None
    ref = parse_filter_param(text)
    return replace(ref, path=comment_text(ref.path))


# A number of a sampling probe's attach text may name a parameter (profile: "hz:{params.hz}"),
# as a message names a value: the perf event is opened with the applied value.
_PLACEHOLDER = re.compile(r"\{params\.([^{}]*)\}")


def placeholders(text: str) -> Tuple[str, ...]:
    """The parameter names an attach text's `{params.NAME}` name, in order."""
    return tuple(_PLACEHOLDER.findall(text))


def fill(text: str, known: Mapping[str, Param]) -> str:
    """The text with each `{params.NAME}` replaced by that parameter's value, in decimal."""
    return _PLACEHOLDER.sub(lambda m: str(known[m.group(1)].value), text)


def _sampling(probe: Probe, known: Dict[str, Param], given: Dict[str, str]) -> Probe:
    """The probe with its sampling targets filled with the applied values, each checked as
    the checker checks a literal (the defaults passed there; a failure is a --set value)."""
    out = []
    for c in probe.candidates:
        if c.template:
            target = fill(c.template, known)
            try:
                perf_events.parse(*target.split(":", 1))
            except perf_events.PerfEventError as e:
                sets = " ".join(f"--set {n}={given[n]}" for n in placeholders(c.template)
                                if n in given)
                raise ValueError(f"{sets}: probe '{probe.name}': {e}") from None
            c = replace(c, target=target, describe=comment_text(f"{c.kind} {target}"))
        out.append(c)
    return replace(probe, candidates=tuple(out))

