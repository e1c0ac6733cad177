"""`ebpf-run SPEC`: load, attach, poll, print, and always clean up.

The loop polls the buffers with a short timeout, so signals, --duration and
map-dump intervals are served promptly. Exceptions raised inside BCC's ctypes
callbacks would otherwise vanish into sys.unraisablehook: every callback
catches, stores the error and asks the loop to stop; the loop re-raises it
once the poll has returned.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from runner.errors import KernelError, OutputError
from runner.kernel.bcc import Attached, Kernel
from runner.model.spec import Drop, MapOutput, Spec
from runner.output.sinks import JsonSink, Sink
from runner.pipeline import compile_spec
from runner.runtime import decode

POLL_MS = 100
LOSS_REPORT_S = 1.0
# A trace_pipe line from bpf_trace_printk: "  TASK-PID  [CPU] FLAGS  TIME: bpf_trace_printk: MSG".
# The task name is at most 16 characters, so text written to trace_marker further along
# a line can never pose as a message.
TRACE_LINE = re.compile(
    rb"^ *.{1,16}-\d+ +(?:\( *[-\d]+\) +)?\[\d+\] \S+ +\d+\.\d+: bpf_trace_printk: er-(\d+): (.*)$")


@dataclass(frozen=True)
class Options:
    json: bool = False
    duration: Optional[float] = None
    count: Optional[int] = None


class Runner:
    def __init__(self, spec: Spec, c_source: str, python_source: str, options: Options,
                 sink: Sink):
        self.spec = spec
        self.c_source = c_source
        self.types = decode.load_types(python_source, spec)
        self.opts = options
        self.sink = sink
        self.stop_reason: Optional[str] = None
        self.error: Optional[BaseException] = None
        self.received: Dict[str, int] = {}
        self.dumps: Dict[str, int] = {}
        self.records = 0
        self.reported: Dict[Tuple[str, str], int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        with _signals(self), Kernel(self.spec, self.c_source) as k:
            k.load()
            self.attach_all(k)
            self.open_channels(k)
            attached = sum(1 for p in self.spec.probes if self._attached.get(p.name))
            self.sink.note(f"ready ({attached} probe{'s' if attached != 1 else ''} attached)")
            # --duration, dump intervals and the summary's run time count from here: a slow
            # compile (seconds under emulation) must not eat into the tracing time.
            started = time.monotonic()
            try:
                self.loop(k, started)
            finally:
                self.finish(k, started)
        return 0

    def attach_all(self, k: Kernel) -> None:
        self._attached: Dict[str, bool] = {}
        failures: List[Attached] = []
        for probe in self.spec.probes:
            if self.stop_reason:
                return
            result = k.attach(probe)
            self._attached[probe.name] = result.method is not None
            self.sink.attach(result.probe, result.method, list(result.skipped), result.optional)
            if result.method is None and not result.optional:
                failures.append(result)
        if failures:
            lines = [f"probe {r.probe} could not attach:" + "".join(
                f"\n  {m}: {why}" for m, why in r.skipped) for r in failures]
            raise KernelError("\n".join(lines))

    def loop(self, k: Kernel, started: float) -> None:
        deadline = started + self.opts.duration if self.opts.duration else None
        dumps = {o.map.name: started + o.every for o in self.spec.map_outputs if o.every}
        next_loss = started + LOSS_REPORT_S
        while not self.stop_reason:
            now = time.monotonic()
            waits = [POLL_MS / 1000] + [t - now for t in dumps.values()]
            if deadline:
                waits.append(deadline - now)
            k.poll(max(0, int(min(waits) * 1000)))
            self.read_trace_pipe(k)
            self.flush()
            self.raise_callback_error()
            now = time.monotonic()
            if deadline and now >= deadline:
                self.stop_reason = "duration"
            for out in self.spec.map_outputs:
                if out.map.name in dumps and now >= dumps[out.map.name]:
                    self.dump(k, out)
                    dumps[out.map.name] += out.every or 0
            if now >= next_loss:
                self.report_losses(k)
                next_loss = now + LOSS_REPORT_S

    def finish(self, k: Kernel, started: float) -> None:
        """Drain what is left, final dumps, losses, then the summary."""
        if k.bpf is None:
            return
        if self.stop_reason != "output closed":
            if self.stop_reason != "count":
                k.drain()
                self.read_trace_pipe(k)
            for out in self.spec.map_outputs:
                if out.at_exit:
                    self.dump(k, out)
            self.flush()
        lost = self.report_losses(k)
        def lost_on(name: str) -> int:
            return sum(x["count"] for x in lost if x["channel"] == name)

        channels: Dict[str, Dict[str, int]] = {
            name: {"received": n, "lost": lost_on(name)} for name, n in self.received.items()}
        for name, n in self.dumps.items():
            channels[name] = {"dumps": n, "lost": lost_on(name)}
        if self.stop_reason != "output closed":
            self.sink.summary(time.monotonic() - started, channels, lost)
        self.raise_callback_error()

    # -- channels --------------------------------------------------------------------------

    def open_channels(self, k: Kernel) -> None:
        for ev in self.spec.events:
            dec = decode.record_decoder(self.types, ev.struct, ev.map.kind == "perf_event_array")
            self.received[ev.map.name] = 0
            if ev.map.kind == "perf_event_array":
                handler = self._event_handler(ev.map.name, ev.format, dec, ev.origin)
                k.open_perf(ev.map, handler, _ignore_perf_lost)
            else:
                batch = (decode.batch_formatter(self.types, ev.struct, ev.format)
                         if self.sink.text_only else None)
                k.open_ring(ev.map, self._records_handler(ev.map.name, ev.format, dec,
                                                          ev.origin, batch))
        if self.spec.messages:
            self.received["messages"] = 0
            if self.spec.messages_via == "buffer":
                assert self.spec.message_buffer is not None
                k.open_ring(self.spec.message_buffer, self._message_records_handler())
            else:
                k.open_trace_pipe(os.getpid() & 0xFFFFFFFF)

    def _event_handler(self, channel: str, fmt: str, dec: decode.RecordDecoder,
                       origin: str) -> Any:
        sink = self.sink

        def on_event(addr: int, size: int) -> None:
            if self.discarding():
                return
            try:
                fields = dec(addr, size)
                sink.event(channel, _format(fmt, fields, origin), fields)
                self.received[channel] += 1
                self._counted()
            except BaseException as e:
                self._fail(e)

        return on_event

    def _records_handler(self, channel: str, fmt: str, dec: decode.RecordDecoder,
                         origin: str, batch: Optional[decode.BatchFormatter]) -> Any:
        """A run of ring records of one size, read in place: formatted in one go when the
        sink only takes text, else (or when a record's format fails) one by one."""
        sink = self.sink

        def on_records(data: bytes, size: int, count: int) -> None:
            if self.discarding():
                return
            try:
                dec.check(size)
                stride = len(data) // count
                left = self._left()
                if left is not None and count > left:
                    data, count = data[:left * stride], left
                lines = None
                if batch is not None:
                    # A format error names the record: the loop below finds and reports it.
                    with contextlib.suppress(Exception):
                        lines = batch(data)
                if lines is not None:
                    sink.events(channel, lines)
                else:
                    for off in range(8, len(data), stride):
                        fields = dec.at(data, off)
                        sink.event(channel, _format(fmt, fields, origin), fields)
                self.received[channel] += count
                self._counted(count)
            except BaseException as e:
                self._fail(e)

        return on_records

    def _message_records_handler(self) -> Any:
        decoders = {m.id: (decode.record_decoder(self.types, m.struct, False), m.format,
                           m.origin) for m in self.spec.messages if m.struct is not None}

        def on_records(data: bytes, size: int, count: int) -> None:
            stride = len(data) // count
            for off in range(8, len(data), stride):
                if self.discarding():
                    return
                try:
                    msg_id = int.from_bytes(data[off:off + 4], sys.byteorder)
                    if msg_id not in decoders:
                        raise KernelError(f"a message with unknown id {msg_id} arrived")
                    dec, fmt, origin = decoders[msg_id]
                    dec.check(size)
                    fields = dec.at(data, off)
                    fields.pop("er_id")
                    self.sink.message(_format(fmt, fields, origin), fields)
                    self.received["messages"] += 1
                    self._counted()
                except BaseException as e:
                    self._fail(e)

        return on_records

    def discarding(self) -> bool:
        """Whether records still arriving are dropped on purpose: after --count, an error or
        a closed stdout. A signal or --duration stops the loop, but what the kernel already
        sent is still read, printed and counted by the final drain."""
        return self.stop_reason in ("count", "error", "output closed")

    def _left(self) -> Optional[int]:
        return None if self.opts.count is None else max(0, self.opts.count - self.records)

    def read_trace_pipe(self, k: Kernel) -> None:
        pipe = k.trace_pipe
        if pipe is None:
            return
        tag = os.getpid() & 0xFFFFFFFF
        while not self.discarding():
            try:
                line = pipe.readline()
            except (BlockingIOError, OSError):
                return
            if not line:
                return
            m = TRACE_LINE.match(line.rstrip(b"\n"))
            if m and int(m.group(1)) == tag:  # another run's or tracer's line otherwise
                self.sink.message(m.group(2).decode("utf-8", "replace"), {})
                self.received["messages"] += 1
                self._counted()

    def _counted(self, n: int = 1) -> None:
        self.records += n
        if self.opts.count is not None and self.records >= self.opts.count:
            self.stop_reason = "count"

    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self.stop_reason = "error"

    def raise_callback_error(self) -> None:
        if self.error is not None:
            e, self.error = self.error, None
            if isinstance(e, BrokenPipeError):
                self.stop_reason = "output closed"
                return
            raise e

    def flush(self) -> None:
        try:
            self.sink.flush()
        except BrokenPipeError:
            # `ebpf-run spec | head -1`: the reader is gone. Stop quietly and clean up.
            _silence_stdout()
            self.stop_reason = "output closed"

    # -- maps and losses -------------------------------------------------------------------

    def dump(self, k: Kernel, out: MapOutput) -> None:
        assert out.map.key is not None and out.map.value is not None
        dk = decode.value_decoder(self.types, out.map.key)
        dv = decode.value_decoder(self.types, out.map.value)
        entries = []
        for kb, vbs in k.map_items(out.map):
            values = [dv(v) for v in vbs]
            value = sum(values) if len(values) > 1 else values[0]
            entries.append((dk(kb), value))
        text = out.separator.join(out.format.format_map({"key": key, "value": value})
                                  for key, value in entries)
        self.sink.map_dump(out.map.name, text, entries)
        self.dumps[out.map.name] = self.dumps.get(out.map.name, 0) + 1
        self.flush()

    def report_losses(self, k: Kernel) -> List[Dict[str, Any]]:
        counts = k.drop_counts() if k.bpf is not None else []
        rows: List[Tuple[str, str, int]] = [
            (_channel(d), d.reason, n) for d, n in zip(self.spec.drops, counts)]
        out = []
        for channel, reason, total in rows:
            before = self.reported.get((channel, reason), 0)
            if total > before:
                self.sink.lost(channel, reason, total - before, total)
                self.reported[(channel, reason)] = total
            if total:
                out.append({"channel": channel, "reason": reason, "count": total})
        return out


def _format(fmt: str, fields: Dict[str, Any], origin: str) -> str:
    try:
        return fmt.format_map(fields)
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError) as e:
        raise OutputError(f"the format of {origin} failed on a real record: {e}; the record "
                          f"was {fields}") from None


def _ignore_perf_lost(_count: int) -> None:
    """The kernel's own perf loss records duplicate the in-kernel counter, which is exact and
    never late; a handler is still given, or BCC prints "Possibly lost" lines of its own."""


def _channel(d: Drop) -> str:
    return "messages" if d.channel == "er_messages" else d.channel


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


class _signals:
    """SIGINT and SIGTERM ask the loop to stop; cleanup and the summary follow."""

    def __init__(self, runner: Runner):
        self.runner = runner

    def __enter__(self) -> _signals:
        self.saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for s in self.saved:
            signal.signal(s, self.handle)
        return self

    def handle(self, signum: int, _frame: Any) -> None:
        # A run already stopping (--count, an error, closed output) keeps its reason: it
        # decides what is still read.
        if not self.runner.stop_reason:
            self.runner.stop_reason = signal.Signals(signum).name

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.saved.items():
            signal.signal(s, handler)


def run_spec(path: str, options: Options) -> int:
    compiled = compile_spec(path)
    for stream in (sys.stdout, sys.stderr):
        # A format like {x:c} can make text no encoding carries (a lone surrogate):
        # print it escaped rather than fail mid-run.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    sink = JsonSink() if options.json else Sink()
    runner = Runner(compiled.spec, compiled.rendered.c, compiled.rendered.python, options, sink)
    try:
        return runner.run()
    finally:
        # The command is ending and everything is released. Ignore further Ctrl-C / SIGTERM
        # for the milliseconds left: Python's default handler would turn a late one into a
        # KeyboardInterrupt traceback or a death by signal instead of the exit code.
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
