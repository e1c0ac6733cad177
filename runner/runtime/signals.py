"""Stopping a run: why it stops, and the SIGINT/SIGTERM handlers that ask for it.

A handler runs between any two bytecodes of the main thread, in the middle of whatever
the run is doing, so it only records the request. The places that can stop safely look
at it: the run loop, the record path (once per record or batch, so a flood of records
cannot hold a stop off), the stdout writer while it waits, tail-call fills and map dumps.

What a stop means, whenever it comes (documented in docs for users by the CLI's owner):
- SIGINT, SIGTERM, --duration: detach every probe, read what the buffers still hold,
  print it, dump the maps shown at exit, report losses and the summary; exit 0. Before
  the probes are ready, the same without the reading: a summary of nothing, exit 0.
- A second SIGINT or SIGTERM means "now": a map or aggregation dump at exit is cut short
  and output a stalled stdout does not take is dropped (the run says how much).
- --count N: exactly N records are printed; what arrives after them is read and counted
  in the summary, not printed.
"""

from __future__ import annotations

import signal
import time
from typing import Any, Dict, List, Optional

from runner import EARLY_SIGNALS

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Signals that arrived between the process's start (runner/__main__.py holds them from its
# first line) and the moment a command put its own handlers in.
EARLY: List[int] = EARLY_SIGNALS
# Reasons after which nothing more is read from the kernel (after --count records are still
# read, to be counted: records.py).
OUTPUT_CLOSED = "output closed"  # stdout's reader went away (`ebpf-run spec | head -1`)
UNREAD = ("error", OUTPUT_CLOSED)


class Stop:
    def __init__(self) -> None:
        self.reason: Optional[str] = None
        self.at: Optional[float] = None  # time.monotonic() of the first request
        self.error: Optional[BaseException] = None
        self.signals = 0  # SIGINT and SIGTERM received so far

    def request(self, reason: str) -> None:
        """The first reason wins: a run already stopping (--count, an error, closed output)
        keeps the reason that decides what is still read."""
        if self.reason is None:
            self.reason = reason
            self.at = time.monotonic()

    def fail(self, e: BaseException) -> None:
        """An error stops the run whatever stopped it before: nothing more is printed."""
        if self.error is None:
            self.error = e
        if self.at is None:
            self.at = time.monotonic()
        self.reason = "error"

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def close_output(self) -> None:
        """Stdout's reader is gone: nothing more is printed or read, whatever stopped the
        run before."""
        self.reason = OUTPUT_CLOSED
        if self.at is None:
            self.at = time.monotonic()

    @property
    def output_closed(self) -> bool:
        return self.reason == OUTPUT_CLOSED

    @property
    def reading(self) -> bool:
        """Whether what the kernel still holds is read: to be printed (after a signal or
        --duration too), or after --count to be counted (records.py); not after an error
        or a closed stdout."""
        return self.reason not in UNREAD



class handle_signals:
    """SIGINT and SIGTERM ask `stop` to stop; the previous handlers come back on exit."""

    def __init__(self, stop: Stop):
        self.stop = stop

    def __enter__(self) -> handle_signals:
        self.saved: Dict[int, Any] = {s: signal.getsignal(s) for s in SIGNALS}
        for s in SIGNALS:
            signal.signal(s, self.handle)
        while EARLY:  # a signal held since start-up is a stop like any other
            self.handle(EARLY.pop(0), None)
        return self

    def handle(self, signum: int, _frame: Any) -> None:
        self.stop.signals += 1
        self.stop.request(signal.Signals(signum).name)

    def __exit__(self, *exc: object) -> None:
        for s, handler in self.saved.items():
            signal.signal(s, handler)


def release_early_signals() -> bool:
    """For commands other than run: the default handlers back; True when a signal came
    while they were held (the command should then end at once, as interrupted)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    came = bool(EARLY)
    EARLY.clear()
    return came
