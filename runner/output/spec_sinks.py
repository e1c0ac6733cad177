"""Output of `ebpf-run serve`, whose specs share stdout and stderr: each spec's sink names
the spec in what it writes.

- its notes (attach, ready, lost, summary, errors) on stderr: `ebpf-run: [NAME] ...`;
- with --json, every record on stdout as a JSON line with a "spec" field first;
- without --json, events and messages are counted (ebpf_run_events_received_total, the
  summary), not printed: serve is for metrics, and lines of several specs' formats mixed
  on one stdout could not be told apart. Map dumps and aggregation tables are printed,
  after a `[NAME]` line.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TextIO, Tuple

from runner.output.json import JsonSink
from runner.output.text import TextSink


class SpecTextSink(TextSink):
    def __init__(self, spec: str, out: Optional[TextIO] = None, err: Optional[TextIO] = None):
        super().__init__(out, err)
        self.spec = spec

    def note(self, text: str) -> None:
        super().note(f"[{self.spec}] {text}")

    def event(self, channel: str, text: str, fields: Dict[str, Any]) -> None:
        self._raise_failure()

    def events(self, channel: str, texts: List[str]) -> None:
        self._raise_failure()

    def message(self, text: str, fields: Dict[str, Any]) -> None:
        self._raise_failure()

    def map_dump(self, name: str, text: str, entries: List[Tuple[Any, Any]]) -> None:
        super().map_dump(name, f"[{self.spec}]\n{text}", entries)

    def aggregation(self, name: str, text: str, records: List[Dict[str, Any]]) -> None:
        if text:
            super().aggregation(name, f"[{self.spec}]\n{text}", records)


class SpecJsonSink(JsonSink):
    def __init__(self, spec: str, out: Optional[TextIO] = None, err: Optional[TextIO] = None):
        super().__init__(out, err)
        self.spec = spec

    def _record(self, record: Dict[str, Any]) -> None:
        super()._record({"spec": self.spec, **record})

    def note(self, text: str) -> None:
        super().note(f"[{self.spec}] {text}")


def spec_sink(json_lines: bool, spec: str, out: TextIO, err: TextIO) -> TextSink:
    return (SpecJsonSink if json_lines else SpecTextSink)(spec, out, err)
