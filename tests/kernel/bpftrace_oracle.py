"""bpftrace as an oracle nobody here wrote: the equivalent program of a tool, run beside
ebpf-run on the same trigger (test_tools.py, test_oracle.py, test_oracle_agg.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

import pytest
from harness import READY_TIMEOUT, SLOW

BPFTRACE = shutil.which("bpftrace")
needs_bpftrace = pytest.mark.skipif(BPFTRACE is None, reason="bpftrace is the oracle")

# Every oracle's program gets this probe: it answers a getpgid() of this test process, so
# the oracle is known to be live ("Attaching N probes..." is printed before they are).
LIVE = 'tracepoint:syscalls:sys_enter_getpgid /pid == {me}/ {{ printf("live\\n"); }}'


class Bpftrace:
    """bpftrace running a program, live once constructed; its lines are collected as they
    come. With as_json it prints JSON lines (-f json), and maps() reads its maps."""

    def __init__(self, program: str, as_json: bool = False):
        fmt = ["-f", "json"] if as_json else []
        # Its strings are 64 bytes unless told; pytest's temporary paths are longer.
        self.proc = subprocess.Popen(
            [BPFTRACE, *fmt, "-e", f"{program} {LIVE.format(me=os.getpid())}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, env={**os.environ, "BPFTRACE_STRLEN": "200"})
        self.lines: List[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self._wait(lambda: any("live" in ln for ln in self.lines), READY_TIMEOUT, "live",
                       poke=lambda: os.getpgid(0))
        except BaseException:
            self.kill()
            raise

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str,
              poke: Callable[[], Any] = lambda: None) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            poke()
            if predicate():
                return
            time.sleep(0.05)
        if predicate():
            return
        raise AssertionError(f"bpftrace: no {what} (exit {self.proc.poll()}): {self.lines}")

    def wait_output(self, predicate: Callable[[List[str]], bool], timeout: float = 10) -> None:
        self._wait(lambda: predicate(self.lines), timeout * SLOW, "expected output")

    def stop(self) -> List[str]:
        """Stop it (SIGINT: it prints its maps) and return its lines, the liveness answers
        left out."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        finally:
            self.kill()
        self._reader.join(10)
        return [ln for ln in self.lines if ln != "live" and '"data": "live\\n"' not in ln]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def maps(self) -> Dict[str, Any]:
        """Its maps and histograms by name (-f json, after stop())."""
        out: Dict[str, Any] = {}
        for line in self.lines:
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("type") in ("map", "hist"):
                    out.update(record["data"])
        return out

    def __enter__(self) -> Bpftrace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def fields(lines: List[str], tag: str) -> List[Tuple[str, ...]]:
    """The oracle's lines that start with `tag`, split into their fields."""
    return [tuple(ln.split()[1:]) for ln in lines if ln.startswith(tag + " ")]


def agree(mine: list, theirs: list, expected: list) -> None:
    """Both sides saw the same, and it is what the trigger did: a difference names both."""
    assert mine == theirs, f"ebpf-run {mine} != bpftrace {theirs}"
    assert mine == expected, f"both sides saw {mine}; the trigger made {expected}"
