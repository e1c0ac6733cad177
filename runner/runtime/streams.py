"""stdout and stderr written with os.write, for the sinks.

Why not sys.stdout: under `python -u` or PYTHONUNBUFFERED=1 (set on this project's
machines) sys.stdout is a TextIOWrapper straight over a raw FileIO, and that ignores a
partial write (CPython gh-85393). A signal interrupting a write blocked on a full pipe
makes exactly one: the rest of the chunk was silently dropped, and with --json two
records came out glued together, the first one cut short. And a write blocked on a pipe
nobody reads cannot be given up, so a stop could wait forever. Here every partial write
is kept, and on a pipe, socket or terminal the writer waits for room with poll() in
short slices, looking at the stop between them; each write then takes at most PIPE_BUF
bytes, which fit once poll says there is room, so no write blocks.

Once a stop is asked for, output that makes no progress for STALL_S is dropped, and
`dropped` says how many bytes. A reader that keeps reading gets everything.
"""

from __future__ import annotations

import os
import select
import stat
import time
from typing import Callable, List

from runner.runtime.signals import Stop

POLL_MS = 100
STALL_S = 1.0


def _nothing() -> None:
    return None


class FdWriter:
    """What the sinks need of a text stream (write, flush), written to a file descriptor."""

    def __init__(self, fd: int, encoding: str, stop: Stop,
                 on_wait: Callable[[], None] = _nothing, stall_s: float = STALL_S):
        self.fd = fd
        self.encoding = encoding
        self.stop = stop
        self.on_wait = on_wait  # called while waiting for room: the run's stop check
        self.stall_s = stall_s
        self.dropped = 0
        self._parts: List[str] = []
        mode = os.fstat(fd).st_mode
        # Regular files and /dev/null never block; pipes, sockets and terminals can.
        self.may_block = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd)

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        if not self._parts:
            return
        data = "".join(self._parts).encode(self.encoding, "backslashreplace")
        self._parts.clear()
        if self.dropped:  # given up once: the rest would arrive out of order
            self.dropped += len(data)
        elif self.may_block:
            self._write_waiting(memoryview(data))
        else:
            view = memoryview(data)
            while view:
                view = view[os.write(self.fd, view):]

    def _write_waiting(self, view: memoryview) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        progress = time.monotonic()
        while view:
            if self._give_up(progress):
                self.dropped += len(view)
                return
            # PEP 475: a signal handler runs, then poll goes on with what is left of the
            # timeout, so the stop is seen within POLL_MS.
            if poller.poll(POLL_MS):
                view = view[os.write(self.fd, view[:select.PIPE_BUF]):]
                progress = time.monotonic()
            else:
                self.on_wait()

    def _give_up(self, progress: float) -> bool:
        if self.stop.at is None:
            return False
        return time.monotonic() - max(progress, self.stop.at) >= self.stall_s
