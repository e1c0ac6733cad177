"""The params section: named integers a spec reads as `params.NAME`, set per run.

    params:
      pid: {type: u32, default: 0, description: only this process (0: all)}

A parameter is a constant of the rendered program (`#define er_param_pid ((u32)1234ULL)`),
so clang folds `params.pid == 0` away and the verifier sees no extra map lookup. Setting
it per run is `apply`: the CLI parses `--set NAME=VALUE`, calls apply(spec, {NAME: VALUE})
on the checked model and renders that (the cache key must then include the values).
"""

from __future__ import annotations

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


def apply(spec: Spec, values: Dict[str, str]) -> Spec:
    """The model with parameters set from `--set NAME=VALUE` texts (decimal or 0x...).
    Raises ValueError, whose text the CLI prints, for an unknown name or a value that does
    not fit."""
    known = {p.name: p for p in spec.params}
    for name, text in values.items():
        if name not in known:
            have = ", ".join(sorted(known)) or "none"
            raise ValueError(f"--set {name}: the spec has no parameter '{name}' "
                             f"(parameters: {have})")
        try:
            value = int(text, 0)
        except ValueError:
            raise ValueError(f"--set {name}={text}: not an integer") from None
        problem = _out_of_range(value, known[name].scalar)
        if problem:
            raise ValueError(f"--set {name}={text}: {problem}")
        known[name] = replace(known[name], value=value)
    return replace(spec, params=tuple(known[p.name] for p in spec.params))

