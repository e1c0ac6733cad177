"""Output formats by name (`--format`, `--json`): each format is one module, found here."""

from __future__ import annotations

from typing import Optional, TextIO, Type

from runner.errors import UsageError
from runner.kinds.registry import Registry
from runner.output.json import JsonSink
from runner.output.text import TextSink

FORMATS: Registry[Type[TextSink]] = Registry("output format")
FORMATS.register("text", TextSink)
FORMATS.register("json", JsonSink)


def sink_for(name: str, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> TextSink:
    """The sink of the format called `name`; an unknown name is refused, never defaulted."""
    cls = FORMATS.get(name)
    if cls is None:
        raise UsageError(f"unknown output format '{name}'; known: {', '.join(sorted(FORMATS))}")
    return cls(out, err)
