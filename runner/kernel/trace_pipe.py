"""Messages through the kernel's shared trace buffer (`messages: {via: trace_pipe}`).

Every bpf_trace_printk line of this run starts with `er-TAG: `, TAG being set in the
er_config map before anything attaches; lines of other runs and tracers are skipped.
"""

from __future__ import annotations

import ctypes as ct
import errno
import re
from typing import Any, List

from runner.errors import EnvironmentProblem
from runner.kernel.environment import TRACEFS

# A trace_pipe line from bpf_trace_printk: "  TASK-PID  [CPU] FLAGS  TIME: bpf_trace_printk: MSG".
# The task name is at most 16 characters, so text written to trace_marker further along
# a line can never pose as a message.
TRACE_LINE = re.compile(
    rb"^ *.{1,16}-\d+ +(?:\( *[-\d]+\) +)?\[\d+\] \S+ +\d+\.\d+: bpf_trace_printk: er-(\d+): (.*)$")
MAX_LINES = 4096  # per read: the loop gets control back even if lines keep coming


class TracePipe:
    def __init__(self, bpf: Any, tag: int):
        bpf[b"er_config"][ct.c_int(0)] = ct.c_uint32(tag)
        self.tag = tag
        try:
            self.file = bpf.trace_open(nonblocking=True)
        except OSError as e:
            if e.errno == errno.EBUSY:
                raise EnvironmentProblem(
                    f"{TRACEFS}/trace_pipe is busy: the kernel allows one reader, and another "
                    "program (another run with messages via trace_pipe, or a `cat "
                    "trace_pipe`) holds it. Stop it, or use the default `messages: {via: "
                    "buffer}`, which any number of runs can use at once") from None
            raise EnvironmentProblem(f"cannot open {TRACEFS}/trace_pipe: {e}") from None

    def messages(self) -> List[str]:
        """This run's messages waiting now (at most MAX_LINES lines are read)."""
        out = []
        for _ in range(MAX_LINES):
            try:
                line = self.file.readline()
            except (BlockingIOError, OSError):
                break
            if not line:
                break
            m = TRACE_LINE.match(line.rstrip(b"\n"))
            if m and int(m.group(1)) == self.tag:  # another run's or tracer's line otherwise
                out.append(m.group(2).decode("utf-8", "replace"))
        return out
