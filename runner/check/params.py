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
from typing import Dict, Mapping, Tuple

from runner.check.checker import Checker
from runner.kinds import perf_events
from runner.model.spec import Param, Probe, Spec
from runner.model.types import SCALARS
from runner.support.comment_text import comment_text


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
    probes = tuple(_sampling(p, known, values) for p in spec.probes)
    return replace(spec, params=tuple(known[p.name] for p in spec.params), probes=probes)


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

