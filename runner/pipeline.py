"""The stages in order, for the commands that need them: load -> schema -> build -> render."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import build, loader, render, schema
from .model import Spec


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    rendered: render.Rendered


def check(path: str, arch: Optional[str] = None) -> Spec:
    """Load, schema-check and meaning-check one spec; raise SpecError with every problem."""
    doc = loader.load_file(path)
    schema.check(doc)
    return build.build(doc, arch)


def compile_spec(path: str, arch: Optional[str] = None) -> Compiled:
    spec = check(path, arch)
    return Compiled(spec, render.render(spec))
