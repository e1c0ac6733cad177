"""The one path every record takes, whatever its channel: decode, format, sink, count.

Perf callbacks, ring runs (read in place or through libbpf's callback), ring messages
and trace_pipe lines all go through Records.take. It first runs the run's stop check
(so a flood of records cannot hold a signal or --duration off: a pending stop detaches
the probes right there), then takes as many records as the run still wants (at most
what --count leaves, the rest counted in after_count; none after an error or a closed
stdout), lets the channel's writer decode, format and hand them to the sink, and counts
them. An exception, which inside a ctypes callback would only reach
sys.unraisablehook, is stored in the Stop and re-raised by the loop.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Dict, Optional, Tuple

from runner.errors import KernelError, OutputError
from runner.kinds.decoders import Decoders
from runner.model.spec import MessageDef, Spec
from runner.output.text import Sink
from runner.runtime import decode
from runner.runtime.signals import Stop

# write(data, n): decode, format and sink the first n records of `data`
Writer = Callable[[Any, int], None]
# A run of ring records: (bytes with 8-byte headers, record size, record count)
Run = Tuple[bytes, int, int]


class Records:
    def __init__(self, sink: Sink, stop: Stop, limit: Optional[int],
                 check: Callable[[], None]):
        self.sink = sink
        self.stop = stop
        self.limit = limit  # --count
        self.check = check  # the run's stop check
        self.received: Dict[str, int] = {}
        # Read after --count had its N: not printed but counted, so that received + lost +
        # these still add up to what the probes did.
        self.after_count: Dict[str, int] = {}
        self.total = 0

    def open(self, channel: str) -> None:
        self.received.setdefault(channel, 0)

    def take(self, channel: str, count: int, write: Writer, data: Any) -> None:
        try:
            self.check()
            if not self.stop.reading:
                return  # an error or a closed stdout: nothing is printed or counted now
            n = count if self.limit is None else max(0, min(count, self.limit - self.total))
            if n < count:
                self.after_count[channel] = self.after_count.get(channel, 0) + count - n
            if n == 0:
                return
            write(data, n)
        except BaseException as e:
            self.stop.fail(e)
            return
        self.received[channel] += n
        self.total += n
        if self.limit is not None and self.total >= self.limit:
            self.stop.request("count")

    # -- the channels' callbacks -----------------------------------------------------------

    def perf_events(self, channel: str, fmt: str, dec: decode.RecordDecoder,
                    origin: str) -> Callable[[int, int], None]:
        sink, text = self.sink, self.sink.event_text

        def write(record: Tuple[int, int], _n: int) -> None:
            fields = dec(*record)
            sink.event(channel, format_record(fmt, fields, origin) if text else "", fields)

        def on_data(addr: int, size: int) -> None:
            self.take(channel, 1, write, (addr, size))

        self.open(channel)
        return on_data

    def ring_events(self, channel: str, fmt: str, dec: decode.RecordDecoder, origin: str,
                    batch: Optional[decode.BatchFormatter], header: int = 8
                    ) -> Callable[[bytes, int, int], None]:
        """Runs of records of one size (ring records, or perf samples read in place, each
        behind `header` bytes): formatted in one go when the sink only takes text, else (or
        when a record's format fails) one by one. A sink that shows no event text (JSON)
        gets none made."""
        sink, text = self.sink, self.sink.event_text

        def write(run: Run, n: int) -> None:
            data, size, count = run
            dec.check(size)
            stride = len(data) // count
            if n < count:
                data = data[:n * stride]
            lines = None
            if batch is not None:
                # A format error names the record: the loop below finds and reports it.
                with contextlib.suppress(Exception):
                    lines = batch(data)
            if lines is not None:
                sink.events(channel, lines)
                return
            for off in range(header, len(data), stride):
                fields = dec.at(data, off)
                sink.event(channel, format_record(fmt, fields, origin) if text else "", fields)

        def on_records(data: bytes, size: int, count: int) -> None:
            self.take(channel, count, write, (data, size, count))

        self.open(channel)
        return on_records

    def ring_messages(self, spec: Spec, types: Any) -> Callable[[bytes, int, int], None]:
        """Runs of message records: each names its message by the id in its first word;
        values shown through a decoder (syscall_name's, `{sig:signal}`) are decoded here."""
        decoders = {m.id: (decode.record_decoder(types, m.struct, False), m.format,
                           m.origin, _shaper(m, spec.arch))
                    for m in spec.messages if m.struct is not None}
        sink = self.sink

        def write(run: Run, n: int) -> None:
            data, size, count = run
            stride = len(data) // count
            for off in range(8, 8 + n * stride, stride):
                msg_id = int.from_bytes(data[off:off + 4], sys.byteorder)
                if msg_id not in decoders:
                    raise KernelError(f"a message with unknown id {msg_id} arrived")
                dec, fmt, origin, shape = decoders[msg_id]
                dec.check(size)
                fields = dec.at(data, off)
                fields.pop("er_id")
                if shape is None:
                    sink.message(format_record(fmt, fields, origin), fields)
                else:
                    shown = shape(fields)
                    sink.message(format_record(fmt, fields, origin), shown)

        def on_records(data: bytes, size: int, count: int) -> None:
            self.take("messages", count, write, (data, size, count))

        self.open("messages")
        return on_records

    def trace_lines(self, texts: list) -> None:
        """Messages read from trace_pipe: already text."""
        if texts:
            self.take("messages", len(texts), self._write_texts, texts)

    def _write_texts(self, texts: list, n: int) -> None:
        for text in texts[:n]:
            self.sink.message(text, {})


def _shaper(m: MessageDef, arch: str
            ) -> Optional[Callable[[Dict[str, Any]], Dict[str, Any]]]:
    """For a print of values other than built-ins: a function that adds the decoded slots
    to a record's fields (for its format) and returns its JSON `data`, each member under
    its key (`er_args_ret` -> `ret`, with `_hex`/`_error` companions), decoded values
    beside or instead of the raw ones. None for a print of built-ins only."""
    if not m.keys and not m.decodes:
        return None
    renames: Dict[str, str] = {}
    for member, key in m.keys:
        renames.update({member: key, f"{member}_hex": f"{key}_hex",
                        f"{member}_error": f"{key}_error"})
    found = Decoders.for_arch(arch) if m.decodes else None
    chosen = [(slot, member, renames.get(member, member), found.get(name))
              for slot, member, name in m.decodes if found is not None]

    def shape(fields: Dict[str, Any]) -> Dict[str, Any]:
        data = {renames.get(f, f): v for f, v in fields.items()}
        for slot, member, key, decoder in chosen:
            raw = fields[member]
            if isinstance(raw, list):  # a u8[N] value: the address bytes
                raw = bytes(raw)
            fields[slot] = decoder(raw)
            data.update(decoder.json_fields(key, raw))
        return data

    return shape


def format_record(fmt: str, fields: Dict[str, Any], origin: str) -> str:
    try:
        return fmt.format_map(fields)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:
        raise OutputError(f"the format of {origin} failed on a real record: {e}; the record "
                          f"was {fields}") from None
