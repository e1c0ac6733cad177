"""Output formats by name: each format is one module, found here."""

from __future__ import annotations

from typing import Dict, Optional, TextIO, Type

from runner.errors import UsageError
from runner.output.json import JsonSink
from runner.output.text import TextSink

FORMATS: Dict[str, Type[TextSink]] = {"text": TextSink, "json": JsonSink}


def sink_for(name: str, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> TextSink:
    """The sink of the format called `name`; an unknown name is refused, never defaulted."""
    cls = FORMATS.get(name)
    if cls is None:
        raise UsageError(f"unknown output format '{name}'; known: {', '.join(sorted(FORMATS))}")
    return cls(out, err)
