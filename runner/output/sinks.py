"""Stage 6: what the user sees. One small interface, a text and a JSON lines sink.

Records (events, messages, map dumps) go to stdout; in text mode the run's own
reports (attach, lost, ready, summary) go to stderr so they never mix with data.
With --json every record is one JSON object on stdout with a `type`, and the
human reports still go to stderr.
Writes are buffered and flushed once per poll batch, not once per event.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional, TextIO, Tuple


class Sink:
    """Text output. Subclassed by JsonSink; the runner talks only to this interface."""

    def __init__(self, out: Optional[TextIO] = None, err: Optional[TextIO] = None):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._lines: List[str] = []

    text_only = True  # events() is enough: no fields needed

    # data records
    def event(self, channel: str, text: str, fields: Dict[str, Any]) -> None:
        self._lines.append(text)

    def events(self, channel: str, texts: List[str]) -> None:
        """A batch of events already formatted (text sinks only)."""
        self._lines.extend(texts)

    def message(self, text: str, fields: Dict[str, Any]) -> None:
        self._lines.append(text)

    def map_dump(self, name: str, text: str, entries: List[Tuple[Any, Any]]) -> None:
        self._lines.append(text)

    # reports about the run
    def note(self, text: str) -> None:
        self.flush()
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
        parts = [f"{name}: {c['received']} received" if "received" in c else
                 f"{name}: {c['dumps']} dump{'s' if c['dumps'] != 1 else ''}"
                 for name, c in channels.items()]
        losses = [f"{x['channel']}: {x['count']} lost ({x['reason']})" for x in lost]
        self.note(f"summary: ran {seconds:.1f}s; " + "; ".join(parts + losses or ["no records"])
                  + ("" if losses else "; nothing lost"))

    def flush(self) -> None:
        if self._lines:
            self.out.write("\n".join(self._lines) + "\n")
            self._lines.clear()
        self.out.flush()


class JsonSink(Sink):
    text_only = False

    def _record(self, record: Dict[str, Any]) -> None:
        self._lines.append(json.dumps(record, ensure_ascii=False))

    def event(self, channel: str, text: str, fields: Dict[str, Any]) -> None:
        self._record({"type": "event", "channel": channel, "data": fields})

    def message(self, text: str, fields: Dict[str, Any]) -> None:
        self._record({"type": "message", "text": text, "data": fields})

    def map_dump(self, name: str, text: str, entries: List[Tuple[Any, Any]]) -> None:
        self._record({"type": "map", "map": name,
                      "entries": [{"key": k, "value": v} for k, v in entries]})

    def attach(self, probe: str, method: Optional[str], skipped: List[Tuple[str, str]],
               optional: bool) -> None:
        super().attach(probe, method, skipped, optional)
        self._record({"type": "attach", "probe": probe, "method": method,
                      "optional": optional,
                      "skipped": [{"method": m, "reason": r} for m, r in skipped]})
        self.flush()

    def lost(self, channel: str, reason: str, count: int, total: int) -> None:
        super().lost(channel, reason, count, total)
        self._record({"type": "lost", "channel": channel, "reason": reason, "count": count,
                      "total": total})

    def summary(self, seconds: float, channels: Dict[str, Dict[str, int]],
                lost: List[Dict[str, Any]]) -> None:
        self._record({"type": "summary", "seconds": round(seconds, 3), "channels": channels,
                      "lost": lost})
        self.flush()
        super().summary(seconds, channels, lost)
