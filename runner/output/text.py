"""The text format: records as lines on stdout, reports about the run on stderr.

Records (events, messages, map dumps) go to stdout; the run's own reports (attach, lost,
ready, summary) go to stderr so they never mix with data. String values arrive as
output.escape.Text, so formatting them already escapes what a terminal would obey; the
batch path (runtime/decode.py) escapes the same way.
Writes are buffered and flushed once per poll batch, not once per event.
"""

from __future__ import annotations

import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple

from runner.output.stdout import OutputUnwritable


class TextSink:
    """Text output, and the interface every format implements: the runner talks only to
    this. Other formats override the data methods and keep the reports on stderr."""

    name = "text"
    text_only = True  # events() is enough: no fields needed
    event_text = True  # event() shows the formatted text (JSON carries the fields only)

    def __init__(self, out: Optional[TextIO] = None, err: Optional[TextIO] = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lines: List[str] = []
        self._unwritable = False
        self._failure: Optional[OutputUnwritable] = None

    # data records. These run inside the buffer callbacks, whose exceptions the runner
    # keeps, then stops the run and raises them after the summary: the right place to
    # report that stdout failed (see flush).
    def event(self, channel: str, text: str, fields: Dict[str, Any]) -> None:
        if self._failure is not None:
            self._raise_failure()
        self._lines.append(text)

    def events(self, channel: str, texts: List[str]) -> None:
        """A batch of events already formatted (text sinks only)."""
        self._raise_failure()
        self._lines.extend(texts)

    def message(self, text: str, fields: Dict[str, Any]) -> None:
        # trace_pipe messages carry numbers only (the checker refuses strings there), so
        # every string value reaches here as a Text, escaped when formatted.
        if self._failure is not None:
            self._raise_failure()
        self._lines.append(text)

    def map_dump(self, name: str, text: str, entries: List[Tuple[Any, Any]]) -> None:
        self._lines.append(text)

    def aggregation(self, name: str, text: str, records: List[Dict[str, Any]]) -> None:
        """One dump of an aggregation: drawn text, or typed records (output/records.py)."""
        if text:
            self._lines.append(text)

    # reports about the run
    def note(self, text: str) -> None:
        self.flush()  # records first
        self.err.write(f"ebpf-run: {text}\n")
        self.err.flush()

    def attach(self, probe: str, method: Optional[str], skipped: List[Tuple[str, str]],
               optional: bool) -> None:
        why = "; ".join(f"{m}: {r}" for m, r in skipped)
        if method:
            self.note(f"{probe}: attached to {method}" + (f" ({why})" if why else ""))
        elif optional:
            self.note(f"warning: optional probe {probe} attached nowhere ({why})")

    def lost(self, channel: str, reason: str, count: int, total: int) -> None:
        self.note(f"lost {count} on {channel} ({reason}); {total} in all")

    def summary(self, seconds: float, channels: Dict[str, Dict[str, int]],
                lost: List[Dict[str, Any]]) -> None:
        parts = [_channel_summary(name, c) for name, c in channels.items()]
        losses = [f"{x['channel']}: {x['count']} lost ({x['reason']})" for x in lost]
        self.note(f"summary: ran {seconds:.1f}s; " + "; ".join(parts + losses or ["no records"])
                  + ("" if losses else "; nothing lost"))
        self._raise_failure()  # the last word of a run whose output failed

    def flush(self) -> None:
        """Write the buffered records; called by the runner once per poll batch.

        A closed reader (BrokenPipeError) propagates at once: the run stops quietly. Any
        other failure (a full disk) is kept, and records are dropped from then on; it is
        raised as OutputUnwritable by the next record (inside a buffer callback, so the run
        stops and still prints its summary) or else by the summary itself, once printed.
        Raising it here instead could skip the summary: the runner flushes while it ends.
        """
        if self._unwritable:
            self._lines.clear()
            return
        try:
            if self._lines:
                self.out.write("\n".join(self._lines) + "\n")
                self._lines.clear()
            self.out.flush()
        except BrokenPipeError:
            raise
        except OutputUnwritable as e:  # from the private stdout (output/stdout.py)
            self._failed(e)
        except OSError as e:  # any other stream
            self._failed(OutputUnwritable.from_os_error("to standard output", e))

    def _failed(self, failure: OutputUnwritable) -> None:
        self._unwritable = True
        self._lines.clear()
        self._failure = failure

    def _raise_failure(self) -> None:
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure


_DUMP_EXTRAS = (("evicted", "idle keys evicted"), ("skipped", "intervals skipped (late dumps)"))


def _channel_summary(name: str, c: Dict[str, int]) -> str:
    if "received" not in c:
        return f"{name}: {c['dumps']} dump{'s' if c['dumps'] != 1 else ''}" + "".join(
            f", {c[field]} {what}" for field, what in _DUMP_EXTRAS if c.get(field)) + \
            (", the one at exit cut short by a signal" if c.get("cut") else "")
    after = c.get("after_count")
    return f"{name}: {c['received']} received" + \
        (f", {after} more read after --count (not printed)" if after else "")


# The interface every format implements (runner/output/registry.py finds them by name).
Sink = TextSink
