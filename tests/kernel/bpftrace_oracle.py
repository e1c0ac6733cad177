"""bpftrace as an oracle nobody here wrote: the equivalent program of a tool, run beside
ebpf-run on the same trigger (test_tools.py, test_oracle.py, test_oracle_agg.py)."""

from __future__ import annotations

import json
import os
import re
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
            # Its dump symbolizes user stacks: over a minute in the emulated VM.
            self.proc.wait(60 * SLOW)
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



STACK_ENTRY_END = re.compile(r"\]: (\d+)$")
STACK_SEPARATOR = re.compile(r"(?:^|(?<=\n)), ")  # frames are indented: never at a line's start


def stack_counts(lines: List[str]) -> List[Tuple[Tuple[Tuple[str, ...], ...], str, int]]:
    """bpftrace's dump of a map keyed by stacks and comm (`@[ustack, comm]`,
    `@[kstack, ustack, comm]`): per entry, its stacks (innermost frame first, as printed:
    `func+offset`, or the address where bpftrace found no name), its comm and its count.
    bpftrace 0.17 prints a stack as a newline and one indented frame a line, and an empty
    one as nothing, with `, ` between the parts of the key (`@[, ` then user frames, when
    the kernel stack is empty):

        @[
            do_syscall_64+113
            entry_SYSCALL_64_after_hwframe+118
        ,
            er_hot_three+29
            main+113
        , spin31]: 12
    """
    entries = []
    text: List[str] = []
    for line in lines:
        if line.startswith("@["):
            text = [line[2:]]
        elif text:
            text.append(line)
        end = STACK_ENTRY_END.search(line) if text else None
        if end:
            joined = "\n".join(text)
            key = joined[:joined.rindex("]: ")]
            *stacks, comm = STACK_SEPARATOR.split(key)
            entries.append((tuple(tuple(f.strip() for f in s.split("\n") if f.strip())
                                  for s in stacks), comm, int(end.group(1))))
            text = []
    return entries
