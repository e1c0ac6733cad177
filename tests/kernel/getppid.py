"""A getppid() load with a known pid, and the spec that traces it (for test_runtime.py
and test_stopping.py)."""

from __future__ import annotations

import subprocess
import sys

# Waits for a line on stdin, then calls getppid() n times and exits.
EXACT = "import os, sys; sys.stdin.readline(); [os.getppid() for _ in range({n})]"


class Generator:
    """Start paused, so a spec can filter on its pid before it makes any calls."""

    def __init__(self, n: int = 0, code: str = ""):
        self.n = n
        self.proc = subprocess.Popen([sys.executable, "-c", code or EXACT.format(n=n)],
                                     stdin=subprocess.PIPE)
        self.pid = self.proc.pid

    def go(self, wait: bool = True) -> None:
        """Let it run; by default wait until it has made all its calls."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.close()
        if wait:
            assert self.proc.wait(60) == 0

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


SPEC = """\
name: getppid-events
structs:
  ev:
    - pid: u32
    - nr: s64
    - comm: char[16]
maps:
  events: {{type: {kind}, value: ev, pages: {pages}}}{calls_map}
probes:
  calls:
    attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
    do:
      - if: "pid == {pid}"
        then:{count}
          - emit: {{to: events, set: {{pid: pid, nr: syscall_nr, comm: comm}}}}
{output}"""


def event_spec(kind: str, pages: int, pid: int, count_calls: bool = False) -> str:
    """Each getppid() of `pid` emitted as an event; with count_calls, also counted in the
    hash map `calls`, which is dumped at exit: what the probe did, counted by itself."""
    if not count_calls:
        return SPEC.format(kind=kind, pages=pages, pid=pid, calls_map="", count="", output="")
    return SPEC.format(kind=kind, pages=pages, pid=pid,
                       calls_map="\n  calls: {type: hash, key: u32, value: u64, max_entries: 4}",
                       count="\n          - count: {map: calls, key: pid}",
                       output="output:\n  - map: calls\n")
