"""class Runner: load -> attach -> ready -> loop -> finish, and always clean up.

The loop polls the buffers with a short timeout, so signals, --duration and map-dump
intervals are served promptly. Every record goes through records.Records; an exception
raised inside one of BCC's ctypes callbacks is stored there and re-raised by the loop
once the poll has returned.

A stop (see signals.py) detaches first, then drains, then counts: once the probes are
detached nothing more is produced, so the final drain ends whatever the load was, and
every record the probes made is either received or counted lost in the summary.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Dict, List, Optional

from runner.errors import KernelError
from runner.kernel.attach import Attached
from runner.kernel.load import Loading
from runner.kernel.maps import DumpInterrupted
from runner.kernel.perf import RECORD_HEADER as PERF_RECORD_HEADER
from runner.kernel.session import Kernel
from runner.kernel.tail_calls import StopRequested
from runner.kinds.maps import MAP_KINDS
from runner.model.spec import MapOutput, Spec
from runner.output.text import Sink
from runner.runtime import decode, dumps, stack_files
from runner.runtime.aggdump import Aggregations
from runner.runtime.losses import Losses, lost_on, trace_pipe_loss
from runner.runtime.options import Options
from runner.runtime.readable import readable
from runner.runtime.records import Records
from runner.runtime.signals import SIGNALS, Stop, handle_signals
from runner.runtime.stacks import has_stacks, with_stacks

POLL_MS = 100
SIGNAL_NAMES = tuple(s.name for s in SIGNALS)  # Stop.reason after SIGINT or SIGTERM
LOSS_REPORT_S = 1.0


class Runner:
    def __init__(self, spec: Spec, c_source: str, python_source: str, options: Options,
                 sink: Sink, stop: Optional[Stop] = None, loading: Optional[Loading] = None,
                 listener: Optional[Any] = None):
        self.spec = spec
        self.c_source = c_source
        self.loading = loading  # the program's load, if begun already (load.begin)
        self.types = decode.load_types(python_source, spec)
        self.opts = options
        self.sink = sink
        self.stop = stop or Stop()
        self.records = Records(sink, self.stop, options.count, self.check_stop)
        self.losses = Losses(spec, sink)
        self.dumps: Dict[str, int] = {}
        self.cut: List[str] = []  # map dumps at exit a second signal cut short
        self.aggs = Aggregations(spec, self.types)
        self.kernel: Optional[Kernel] = None  # set while probes may be attached
        self.deadline: Optional[float] = None
        self.attached: Dict[str, Optional[str]] = {}  # probe -> what attached (None: none)
        self.served: Optional[Any] = None  # metrics.Served with --metrics
        self.listener = listener  # --metrics' socket, bound before the compile

    @property
    def stop_reason(self) -> Optional[str]:
        return self.stop.reason

    # -- lifecycle -------------------------------------------------------------------------

    def run(self) -> int:
        with handle_signals(self.stop), Kernel(self.spec, self.c_source, loading=self.loading,
                                                   fallbacks=self.opts.fallbacks) as k:
            started = self.start(k)
            if started is None:  # stopped before the probes were ready
                self.sink.note(f"stopped ({self.stop.reason}) before the probes were ready")
                self.sink.summary(0.0, {}, [])
                return 0
            try:
                self.run_started(k, started)
            finally:
                if self.served is not None:
                    self.served.stop()
        return 0

    def run_started(self, k: Kernel, started: float) -> None:
        """The loop, then the finish, whatever ended the loop (serve runs it in a thread)."""
        try:
            self.loop(k, started)
        finally:
            self.finish(k, started)

    def start(self, k: Kernel) -> Optional[float]:
        """Load, attach, open the channels; the time tracing starts, or None on a stop."""
        if self.stop.requested:
            return None
        # A compile in a child is given up on a stop; one in this process (no child) is
        # not interrupted, and the stop is seen right after it.
        k.load(lambda: self.stop.requested)
        self.kernel = k
        if self.stop.requested or not self.attach_all(k) or self.stop.requested:
            return None
        self.open_channels(k)
        if self.opts.metrics:
            from runner.runtime.metrics import serve  # prometheus-client: only when asked
            self.served, port = serve(self.opts.metrics, self.spec, self.types, k,
                                      self.records.received, self.losses.reported, self.attached,
                                      self.listener, lambda: self.aggs.evicted)
            self.sink.note(f"metrics on port {port} (/metrics)")
            listener = self.served.server.listener
            exposure = listener.exposure() if listener is not None else None
            if exposure:  # reachable from other machines: say so where it cannot be missed
                self.sink.note(exposure)
        attached = sum(1 for how in self.attached.values() if how is not None)
        self.sink.note(f"ready ({attached} probe{'s' if attached != 1 else ''} attached)")
        # --duration, dump intervals and the summary's run time count from here: a slow
        # compile (seconds under emulation) must not eat into the tracing time.
        started = time.monotonic()
        if self.opts.duration:
            self.deadline = started + self.opts.duration
        return started

    def attach_all(self, k: Kernel) -> bool:
        """Attach every probe; False if a stop came first."""
        failures: List[Attached] = []
        for probe in self.spec.probes:
            try:
                result = k.attach(probe, lambda: self.stop.requested)
            except StopRequested:
                return False
            self.attached[probe.name] = result.method
            self.sink.attach(result.probe, result.method, list(result.skipped), result.optional)
            if result.method is None and not result.optional:
                failures.append(result)
            if self.stop.requested:
                return False
        if failures:
            lines = [f"probe {r.probe} could not attach:" + "".join(
                f"\n  {m}: {why}" for m, why in r.skipped) for r in failures]
            raise KernelError("\n".join(lines))
        return True

    def open_channels(self, k: Kernel) -> None:
        for ev in self.spec.events:
            perf = not MAP_KINDS.lookup(ev.map.kind).ring  # a perf buffer's records have a header
            dec = readable(with_stacks(decode.record_decoder(self.types, ev.struct, perf),
                                       self.aggs.stacks, k.maps), ev.decode, self.aggs.decoders)
            header = PERF_RECORD_HEADER if perf else 8
            batch = (decode.batch_formatter(self.types, ev.struct, ev.format, header)
                     if self.sink.text_only and not ev.decode and not has_stacks(ev.struct)
                     else None)
            runs = self.records.ring_events(ev.map.name, ev.format, dec, ev.origin, batch,
                                            header)
            if perf:
                k.channels.open_perf(ev.map, self.records.perf_events(ev.map.name, ev.format, dec,
                                                             ev.origin), _ignore_perf_lost, runs)
            else:
                k.channels.open_ring(ev.map, runs)
        if self.spec.stack_pids is not None:
            k.channels.open_ring(self.spec.stack_pids.ring, self.aggs.stacks.on_pids)
        if self.spec.messages:
            if self.spec.messages_via == "buffer":
                assert self.spec.message_buffer is not None
                k.channels.open_ring(self.spec.message_buffer,
                                     self.records.ring_messages(self.spec, self.types))
            else:
                self.records.open("messages")
                k.channels.open_trace_pipe(os.getpid() & 0xFFFFFFFF)

    def loop(self, k: Kernel, started: float) -> None:
        due = {o.map.name: started + o.every for o in self.spec.map_outputs if o.every}
        next_loss = started + LOSS_REPORT_S
        self.aggs.start(started)
        while not self.stop.requested:
            now = time.monotonic()
            waits = [POLL_MS / 1000] + [t - now for t in due.values()] + self.aggs.wait(now)
            if self.deadline:
                waits.append(self.deadline - now)
            k.channels.poll(max(0, int(min(waits) * 1000)))
            self.read_trace_pipe(k)
            self.flush()
            self.raise_callback_error()
            self.check_stop()
            now = time.monotonic()
            for out in self.spec.map_outputs:
                if out.map.name in due and now >= due[out.map.name] and not self.stop.requested:
                    self.dump(k, out, self.stopping)
                    due[out.map.name] += out.every or 0
            self.aggs.tick(k, self.sink, self.stopping)
            self.flush()
            if now >= next_loss:
                self.losses.report(k)
                next_loss = now + LOSS_REPORT_S

    def stopping(self) -> bool:
        """For a long dump in the loop: whether to give way (to a signal, or --duration)."""
        self.check_stop()
        return self.stop.requested

    def check_stop(self) -> None:
        """Called often (every record or batch, every loop turn, while output waits):
        starts a stop whose time has come, and detaches the probes once one is asked for."""
        if self.deadline is not None and not self.stop.requested and \
                time.monotonic() >= self.deadline:
            self.stop.request("duration")
        if self.stop.requested and self.kernel is not None:
            k, self.kernel = self.kernel, None
            k.detach_all()

    def finish(self, k: Kernel, started: float) -> None:
        """Detach, drain what is left, final dumps, losses, then the summary."""
        self.kernel = None
        if k.bpf is None:
            return
        k.detach_all()  # nothing is produced from here on: the drain below ends
        closed = self.stop.output_closed
        if not closed:
            if self.stop.reading:
                k.channels.drain()
                self.drain_trace_pipe(k)
            # A signal beyond the one that stopped the run means "now", whenever it came:
            # also while a long dump in the loop was giving way to the stop.
            signals = 1 if self.stop.reason in SIGNAL_NAMES else 0
            for out in self.spec.map_outputs:
                if out.at_exit:
                    self.dump(k, out, lambda: self.stop.signals > signals, at_exit=True)
            self.aggs.final(k, self.sink, lambda: self.stop.signals > signals)
            self.flush()
        lost = self.losses.report(k)
        if k.channels.trace_pipe is not None and not closed and self.stop.reading:
            # After the detach and the drain: every line sent is read or lost by now.
            read = self.records.received.get("messages", 0) + \
                self.records.after_count.get("messages", 0)
            lost += trace_pipe_loss(self.sink, k.maps.sent_count(), read)
        channels = summary_channels(self.records, self.dumps, self.cut, self.aggs, lost)
        if not self.stop.output_closed:  # also when the drain or a dump found it closed
            self.sink.summary(time.monotonic() - started, channels, lost)
        self.raise_callback_error()
        stack_files.write(self.spec, self.opts, self.aggs, k.maps)

    # -- helpers ---------------------------------------------------------------------------

    def read_trace_pipe(self, k: Kernel) -> bool:
        """Read what trace_pipe holds now (a bounded batch); whether it had any of ours."""
        if k.channels.trace_pipe is None or not self.stop.reading:
            return False
        lines = k.channels.trace_pipe.messages()
        self.records.trace_lines(lines)
        return bool(lines)

    def drain_trace_pipe(self, k: Kernel) -> None:
        """Everything left once the probes are detached. The trace buffer holds a few
        hundred lines at most, so a bound on the batches only guards against another
        tracer's endless lines."""
        for _ in range(64):
            if not self.read_trace_pipe(k):
                return

    def dump(self, k: Kernel, out: MapOutput, should_stop: Callable[[], bool],
             at_exit: bool = False) -> None:
        try:
            dumps.dump(k, self.types, self.sink, out, should_stop)
        except DumpInterrupted as e:
            self.sink.note(f"map dump cut short by a signal ({e})")
            if at_exit:
                self.cut.append(out.map.name)
            return
        self.dumps[out.map.name] = self.dumps.get(out.map.name, 0) + 1
        self.flush()

    def raise_callback_error(self) -> None:
        e, self.stop.error = self.stop.error, None
        if e is None:
            return
        if isinstance(e, BrokenPipeError):
            self._output_closed()
            return
        raise e

    def flush(self) -> None:
        try:
            self.sink.flush()
        except BrokenPipeError:
            # `ebpf-run spec | head -1`: the reader is gone. Stop quietly and clean up.
            self._output_closed()

    def _output_closed(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
        self.stop.close_output()


def _ignore_perf_lost(_count: int) -> None:
    """The kernel's own perf loss records duplicate the in-kernel counter, which is exact and
    never late; a handler is still given, or BCC prints "Possibly lost" lines of its own."""


def summary_channels(records: Records, dumps: Dict[str, int], cut_maps: List[str],
                     aggs: Aggregations, lost: List[Dict[str, Any]]
                     ) -> Dict[str, Dict[str, int]]:
    """What the summary says of each channel and dumped map: received, lost, dumps, cut."""
    channels: Dict[str, Dict[str, int]] = {
        name: {"received": n, "lost": lost_on(lost, name)}
        for name, n in records.received.items()}
    for name, n in records.after_count.items():
        channels[name]["after_count"] = n
    cut = {name: 0 for name in cut_maps + aggs.cut}  # cut before a first dump
    for name, n in {**cut, **dumps, **aggs.counts}.items():
        channels[name] = {"dumps": n, "lost": lost_on(lost, name)}
        if name in cut:
            channels[name]["cut"] = 1
    aggs.add_to_summary(channels)
    return channels
