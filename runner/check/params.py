"""The params section: named integers a spec reads as `params.NAME`, set per run.

    params:
      pid: {type: u32, default: 0, description: only this process (0: all)}

A parameter is a constant of the rendered program (`#define er_param_pid ((u32)1234ULL)`),
so clang folds `params.pid == 0` away and the verifier sees no extra map lookup. Setting
it per run is `apply`: the CLI parses `--set NAME=VALUE`, calls apply(spec, {NAME: VALUE})
on the checked model and renders that (the cache key must then include the values).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Dict, Tuple

from runner.check.checker import Checker
from runner.model.spec import Param, Spec
from runner.model.types import SCALARS


def check(ck: Checker) -> Tuple[Param, ...]:
    out = []
    for name, raw in ck.data.get("params", {}).items():
        path = ("params", name)
        scalar = SCALARS[raw["type"]]
        problem = _out_of_range(raw["default"], scalar.name)
        if problem:
            ck.err((*path, "default"), problem)
            continue
        p = Param(name, scalar.name, raw["default"], raw["default"], ck.origin(path))
        ck.params[name] = p
        out.append(p)
    return tuple(out)


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
    """The model with parameters set from `--set NAME=VALUE` texts (see `parse`), one per
    name (the CLI keeps the last of repeated ones). Raises ValueError, whose text the CLI
    prints, for an unknown name or a value that is no integer or does not fit."""
    known = {p.name: p for p in spec.params}
    for name, text in values.items():
        if name not in known:
            have = ", ".join(sorted(known)) or "none"
            raise ValueError(f"--set {name}: the spec has no parameter '{name}' "
                             f"(parameters: {have})")
        value = parse(name, text)
        problem = _out_of_range(value, known[name].scalar)
        if problem:
            raise ValueError(f"--set {name}={text}: {problem}")
        known[name] = replace(known[name], value=value)
    return replace(spec, params=tuple(known[p.name] for p in spec.params))

