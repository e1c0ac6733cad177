"""The stages in order, for the commands that need them: load -> schema -> build -> render.

`compile_spec` keeps its result in a cache (runner/support/cache.py) keyed by the spec's
bytes, ebpf-run's own code, the parameters and the running kernel (whose tracepoint formats
and BTF the checker reads), so a repeated run imports neither YAML, jsonschema nor Jinja.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Tuple

from runner.errors import UsageError
from runner.support import cache

if TYPE_CHECKING:
    from runner.model.spec import Rendered, Spec


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    rendered: Rendered


def check(path: str, arch: Optional[str] = None, raw: Optional[bytes] = None) -> Spec:
    """Load, schema-check and meaning-check one spec (its bytes `raw` when the caller read
    them already); raise SpecError with every problem."""
    from runner.check import build
    from runner.spec import loader, schema

    doc = loader.load_file(path) if raw is None else loader.load_bytes(raw, path)
    try:
        schema.check(doc)
    except schema.UnknownActions as e:  # the checker reports the rest with them
        return build.build(doc, arch, e.diagnostics)
    return build.build(doc, arch)


def compile_spec(path: str, arch: Optional[str] = None,
                 params: Tuple[Tuple[str, str], ...] = (),
                 on_miss: Optional[Callable[[], None]] = None,
                 on_hit: Optional[Callable[[], None]] = None) -> Compiled:
    """The checked model and its rendering, with the spec's parameters set from `params`
    (`--set NAME=VALUE` texts: the generated C holds them as constants). `on_hit` is
    called when the cache holds them, before they are read back; `on_miss` when it does
    not (or they did not read back), before they are made."""
    from runner.spec.source import read_spec
    from runner.support.syscalls import host_arch

    arch = arch or host_arch()
    raw = read_spec(path)  # once: the bytes keyed are the bytes checked
    k = cache.key(path, raw, arch, params)
    hit = cache.load(k, Compiled, on_found=on_hit)
    if hit is not None:
        return hit
    if on_miss is not None:
        on_miss()
    from runner.codegen.render import render

    spec = check(path, arch, raw)
    if params:
        from runner.check.params import apply

        try:
            spec = apply(spec, dict(params))
        except ValueError as e:
            raise UsageError(str(e)) from None
    compiled = Compiled(spec, render(spec))
    cache.store(k, compiled)
    return compiled
