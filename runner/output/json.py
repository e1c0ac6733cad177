"""The JSON lines format: every record one JSON object on stdout with a `type`.

The human reports (attach, lost, ready, summary) still go to stderr as in the text
format; attach, lost and summary are also records. Values are exact: json.dumps escapes
control characters, and output.escape.Text values encode as their plain characters.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from runner.output.escape import ReadFailed, hex_of
from runner.output.text import TextSink


def _value(o: Any) -> Any:
    """What JSON has for the values that are not plain data: a failed string read is null
    (FIELD_error beside it names the errno)."""
    if isinstance(o, ReadFailed):
        return None
    raise TypeError(f"{type(o).__name__} is not JSON data")


# One encoder for every record: json.dumps builds a new one per call whenever an option
# differs from its defaults (~0.9 us of every JSON line).
_encode_raw = json.JSONEncoder(ensure_ascii=False, default=_value).encode

# JSON allows these raw inside strings, but str.splitlines and older JavaScript end a line
# at them: a value holding one would split its record. They occur only inside strings
# (never as JSON's own whitespace), so replacing them in the encoded line is exact.
_LINE_ENDS = re.compile("[\u0085\u2028\u2029]")


def _encode(record: Dict[str, Any]) -> str:
    line = _encode_raw(record)
    if _LINE_ENDS.search(line) is None:
        return line
    return _LINE_ENDS.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def _entry(key: Any, value: Any) -> Dict[str, Any]:
    """A map dump's entry; a char[N] key or value that is not UTF-8 (U+FFFD in the text)
    has its bytes beside it, as key_hex or value_hex, as an event's FIELD_hex."""
    entry: Dict[str, Any] = {}
    for name, part in (("key", key), ("value", value)):
        entry[name] = part
        raw = hex_of(part)
        if raw is not None:
            entry[f"{name}_hex"] = raw
    return entry


class JsonSink(TextSink):
    name = "json"
    text_only = False
    event_text = False

    def _record(self, record: Dict[str, Any]) -> None:
        self._lines.append(_encode(record))

    def event(self, channel: str, text: str, fields: Dict[str, Any]) -> None:
        self._raise_failure()
        self._record({"type": "event", "channel": channel, "data": fields})

    def events(self, channel: str, texts: List[str]) -> None:
        raise TypeError("JsonSink needs each event's fields: text_only is False")

    def message(self, text: str, fields: Dict[str, Any]) -> None:
        self._raise_failure()
        self._record({"type": "message", "text": text, "data": fields})

    def map_dump(self, name: str, text: str, entries: List[Tuple[Any, Any]]) -> None:
        self._record({"type": "map", "map": name,
                      "entries": [_entry(k, v) for k, v in entries]})

    def aggregation(self, name: str, text: str, records: List[Dict[str, Any]]) -> None:
        self._raise_failure()
        for record in records:
            self._record(record)

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
