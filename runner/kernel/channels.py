"""The channels from the kernel to user space of one loaded spec: ring and perf buffers
read in place (or through BCC's callbacks where that cannot be), trace_pipe, and the poll
that waits on them all.
"""

from __future__ import annotations

import mmap
import os
import select
import time
from typing import Any, List, Optional

from runner.kernel.perf import (
    DataCallback,
    LostCallback,
    in_place_supported,
    open_perf_callback,
    open_perf_in_place,
)
from runner.kernel.perf import RecordsCallback as PerfRecordsCallback
from runner.kernel.ring import CallbackRingReader, RecordsCallback, RingReader
from runner.kernel.trace_pipe import TracePipe
from runner.model.spec import Map
from runner.support.fallbacks import FAST, Fallbacks

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


class Channels:
    def __init__(self, bcc: Any, bpf: Any, fallbacks: Fallbacks = FAST):
        self.bcc = bcc
        self.bpf = bpf
        self.fallbacks = fallbacks
        # RingReader, CallbackRingReader or PerfReader: anything with drain() and close()
        self.rings: List[Any] = []
        self._epoll: Any = None
        self._interval = DRAIN_MS
        self._busy_ms = PERF_DRAIN_MS  # the interval while records flow: DRAIN_MS with a ring
        self.has_perf = False
        self.trace_pipe: Optional[TracePipe] = None

    def open_perf(self, m: Map, on_data: DataCallback, on_lost: LostCallback,
                  on_records: PerfRecordsCallback) -> None:
        """Read in place a batch at a time where we can (on_records), else through BCC's
        reader, one callback per record (on_data); neither wakes up per record."""
        if not in_place_supported() or self.fallbacks.perf_callback:
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
        if not self.fallbacks.ring_callback and os.uname().machine == "x86_64":
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

    def close(self) -> None:
        for ring in self.rings:
            ring.close()
        self.rings.clear()
        if self._epoll is not None:
            self._epoll.close()
            self._epoll = None
