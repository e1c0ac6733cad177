"""The names the runtime and older tests import: `Sink` is the text sink (and the interface
every format implements), `JsonSink` the JSON lines sink. New code asks
runner.output.registry.sink_for(name)."""

from runner.output.json import JsonSink
from runner.output.text import TextSink
from runner.output.text import TextSink as Sink

__all__ = ["JsonSink", "Sink", "TextSink"]
