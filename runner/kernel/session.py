"""class Kernel: one loaded spec, from compile to release.

It compiles the rendered C, fills tail-call tables, attaches each probe by the first
attach option that works (saying why the earlier ones did not), opens the channels to
user space, polls them, detaches, reads the loss counters and map contents, and releases
everything on close. Callers see project exceptions only.
"""

from __future__ import annotations

import ctypes as ct
import mmap
import os
import select
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, List, Optional, Tuple

from runner.errors import KernelError
from runner.kernel import maps, tail_calls
from runner.kernel.attach import Attached, AttachHook, Detach, hook_for
from runner.kernel.bcc import CapturedStderr, reason
from runner.kernel.load import Loading, begin
from runner.kernel.perf import (
    DataCallback,
    LostCallback,
    in_place_supported,
    open_perf_callback,
    open_perf_in_place,
)
from runner.kernel.perf import RecordsCallback as PerfRecordsCallback
from runner.kernel.ring import CallbackRingReader, RecordsCallback, RingReader
from runner.kernel.tail_calls import StopRequested
from runner.kernel.trace_pipe import TracePipe
from runner.model.spec import Candidate, Function, Map, Probe, Spec

# Ring buffers are read every DRAIN_MS while records arrive, backing off to IDLE_MS when
# they stop, so an idle run costs next to nothing. Each poll ends with one drain pass.
DRAIN_MS = 2
IDLE_MS = 100
# Perf buffers wake the reader when half full, so their timed drain only bounds how late a
# record is shown; every 2 ms it cost about 0.5 us per event at 25k events/s.
PERF_DRAIN_MS = 10
# After the detach no program produces, so the final drain ends; the bound only guards
# against a detach that did not take.
FINAL_DRAIN_PASSES = 1000
MEMBARRIER_CMD_GLOBAL = 1
_SYS_MEMBARRIER = {"x86_64": 324, "aarch64": 283}
_libc = ct.CDLL(None, use_errno=True)


def _never() -> bool:
    return False


@dataclass
class Kernel:
    """A loaded spec. Use as a context manager: leaving it releases everything."""

    spec: Spec
    c_source: str
    bpf: Any = None
    bcc: Any = None
    # RingReader, CallbackRingReader or PerfReader: anything with drain() and close()
    rings: List[Any] = field(default_factory=list)
    _epoll: Any = None
    _interval: int = DRAIN_MS
    _busy_ms: int = PERF_DRAIN_MS  # the interval while records flow: DRAIN_MS with a ring
    has_perf: bool = False
    trace_pipe: Optional[TracePipe] = None
    _detaches: List[Tuple[str, Detach]] = field(default_factory=list)
    # A load begun early (load.begin), so the compile overlapped the caller's imports.
    loading: Optional[Loading] = None

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Load the program; self.bpf stays None if `should_stop()` came true while a
        compiler child was still at work (load.py)."""
        self.loading = self.loading or begin(self.c_source)
        self.bcc = self.loading.bcc
        self.bpf = self.loading.result(should_stop)

    # -- attach and detach -----------------------------------------------------------------

    def attach(self, probe: Probe, should_stop: Callable[[], bool] = _never) -> Attached:
        """The first option of the probe that attaches; StopRequested if a stop came."""
        skipped: List[Tuple[str, str]] = []
        for cand in probe.candidates:
            hook = hook_for(cand)
            why = hook.precheck(self.bcc, cand) or self._try(probe, cand, hook, should_stop)
            if why is None:
                return Attached(probe.name, cand.describe, tuple(skipped), probe.optional)
            skipped.append((cand.describe, why))
        return Attached(probe.name, None, tuple(skipped), probe.optional)

    def _try(self, probe: Probe, cand: Candidate, hook: AttachHook,
             should_stop: Callable[[], bool]) -> Optional[str]:
        name = cand.function.c_name
        # libbcc and libbpf print their own complaints on fd 2; the reason we give says it.
        with CapturedStderr() as noise:
            try:
                if not hook.loads_itself:
                    self._load_function(cand.function)
                for table in probe.tables:
                    tail_calls.fill(self.bcc, self.bpf, self.spec, table,
                                    cand.function.context, self._load_function, should_stop)
                detach = hook.attach(self.bcc, self.bpf, cand, name.encode())
            except StopRequested:
                self._unload(name)
                raise
            except Exception as e:  # BCC's bare Exceptions: turn them into a reason
                failure: Optional[Exception] = e
            else:
                failure = None
        if failure is None:
            self._detaches.append((cand.describe, detach))
            return None
        self._unload(name)
        for table in probe.tables:  # the next option must not find it bound to this type
            tail_calls.renew(self.bcc, self.bpf, table)
        why = reason(failure)
        detail = noise.text.strip().splitlines()
        return f"{why} [{detail[-1].strip()}]" if detail and len(why) < 40 else why

    def _load_function(self, fn: Function) -> Any:
        prog_type = getattr(self.bcc.BPF, fn.prog_type)
        return self.bpf.load_func(fn.c_name.encode(), prog_type)

    def _unload(self, c_name: str) -> None:
        fn = self.bpf.funcs.pop(c_name.encode(), None)
        if fn is not None:
            os.close(fn.fd)

    def detach_all(self) -> None:
        """Detach every probe, then wait until no program still runs: from here on the
        buffers and counters only hold what was produced before, so a drain ends."""
        if not self._detaches:
            return
        failed = self._detach_each()
        _wait_for_running_programs()
        if failed:
            raise KernelError("could not detach: " + "; ".join(failed))

    def _detach_each(self) -> List[str]:
        """Undo every attach, latest first; a failure does not stop the others."""
        failed = []
        while self._detaches:
            method, detach = self._detaches.pop()
            with CapturedStderr():
                try:
                    detach()
                except Exception as e:  # BCC's bare Exceptions
                    failed.append(f"{method}: {reason(e)}")
        return failed

    # -- channels --------------------------------------------------------------------------

    def open_perf(self, m: Map, on_data: DataCallback, on_lost: LostCallback,
                  on_records: PerfRecordsCallback) -> None:
        """Read in place a batch at a time where we can (on_records), else through BCC's
        reader, one callback per record (on_data); neither wakes up per record."""
        if not in_place_supported():
            open_perf_callback(self.bpf, m, on_data, on_lost)
            self.has_perf = True
            return
        for reader in open_perf_in_place(self.bcc, self.bpf, m, on_records):
            self.rings.append(reader)
            self._watch(reader.fd)

    def _watch(self, fd: int) -> None:
        if self._epoll is None:
            self._epoll = select.epoll()
        # Edge-triggered: epoll_wait returns on a forced wakeup, not whenever data waits.
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLET)

    def open_ring(self, m: Map, on_records: RecordsCallback) -> None:
        """Read the ring through its mmap: no libbpf callback, so no ctypes call per record."""
        fd = self.bpf[m.name.encode()].map_fd
        in_place = os.uname().machine == "x86_64" and \
            os.environ.get("EBPF_RUN_RING_READER") != "callback"  # the switch is for tests
        if in_place:
            self.rings.append(RingReader(fd, m.pages * mmap.PAGESIZE, on_records))
        else:  # the in-place reader relies on x86-64 memory ordering
            self.rings.append(CallbackRingReader(self.bcc, fd, on_records))
        self._busy_ms = DRAIN_MS
        self._watch(fd)

    def open_trace_pipe(self, tag: int) -> TracePipe:
        self.trace_pipe = TracePipe(self.bpf, tag)
        return self.trace_pipe

    def poll(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms (less while records flow), then read every buffer."""
        if self.rings or self.has_perf:
            timeout_ms = min(timeout_ms, self._interval)
        if self.has_perf:
            # Records wake BCC's reader every CALLBACK_WAKEUP_EVENTS only: read the rest too.
            self.bpf.perf_buffer_poll(timeout_ms)
            self.bpf.perf_buffer_consume()
        elif self.rings:
            self._epoll.poll(timeout_ms / 1000)
        elif timeout_ms > 0:
            time.sleep(timeout_ms / 1000)
        got = sum(ring.drain() for ring in self.rings)
        self._interval = self._busy_ms if got else min(self._interval * 2, IDLE_MS)

    def drain(self) -> None:
        """Read what is left in every buffer without waiting (after detach_all: it ends)."""
        for ring in self.rings:
            for _ in range(FINAL_DRAIN_PASSES):
                if not ring.drain():
                    break
        if self.has_perf:
            self.bpf.perf_buffer_consume()

    # -- maps ------------------------------------------------------------------------------

    def drop_counts(self) -> List[int]:
        return maps.drop_counts(self.bpf, self.spec.drops)

    def sent_count(self) -> int:
        return maps.sent_count(self.bpf)

    def map_items(self, m: Map, should_stop: Callable[[], bool] = _never
                  ) -> Iterator[Tuple[bytes, List[bytes]]]:
        return maps.map_items(self.bpf, m, should_stop)

    # -- cleanup ---------------------------------------------------------------------------

    def close(self) -> None:
        if self.loading is not None:  # begun, never used: a stop came first
            self.loading.discard()
        if self.bpf is not None:
            bpf, self.bpf = self.bpf, None
            try:
                self._detach_each()  # some fds are ours, not BCC's (see attach.py)
                for ring in self.rings:
                    ring.close()
                if self._epoll is not None:
                    self._epoll.close()
                bpf.cleanup()
            finally:
                self.rings.clear()


def _wait_for_running_programs() -> None:
    """A program that started before its detach may still be writing a record. RCU covers
    every BPF program run from a tracepoint, probe or trampoline, so once a grace period
    has passed (membarrier's global command waits for one) none is still running."""
    nr = _SYS_MEMBARRIER.get(os.uname().machine)
    if nr is None or _libc.syscall(nr, MEMBARRIER_CMD_GLOBAL, 0) != 0:
        time.sleep(0.05)  # no membarrier: programs run for microseconds
