"""Run one test case: a child `ebpf-run run SPEC --json`, the trigger once it is ready,
then a stop, and the records matched against the expectations.

A child process rather than the runtime in this process: a run installs signal handlers,
owns stdout and may end in any kernel error; as a child it is isolated, stopped the way a
user stops it (SIGINT), and its exit code is part of the verdict. Every wait is bounded.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Counter, Deque, Dict, Iterator, List, Optional, Tuple

from runner.model.tests import TestCase
from runner.testing import expectations
from runner.testing.containment import Box
from runner.testing.triggers import run_trigger

# Compiling takes ~0.3 s here and ~10 s on a software-emulated kernel: be generous.
READY_TIMEOUT = float(os.environ.get("EBPF_RUN_READY_TIMEOUT", "120"))
STOP_TIMEOUT = 60.0
POLL = 0.05
# What a case keeps of the run's records, in bytes of their JSON lines: about 12 times that
# in memory. Beyond it records are counted, not kept (a busy probe prints gigabytes).
KEEP_BYTES = 8 << 20
ERR_LINES = 20  # the last lines of the run's stderr, for failure messages
ERR_LINE = 4096


@dataclass(frozen=True)
class Failure:
    message: str  # what was expected and what was seen
    origin: str = ""  # the expectation in the spec; empty for a problem with the run itself


@dataclass(frozen=True)
class CaseResult:
    status: str  # pass | fail | skip
    seconds: float
    failures: Tuple[Failure, ...] = ()  # one per failed expectation or problem
    reason: str = ""  # why skipped
    notes: Tuple[str, ...] = ()  # what was counted and not kept


class Kept:
    """The records of a run kept for its expectations, up to KEEP_BYTES of their JSON text;
    beyond that each is counted under what selects it (expectations.kept_as) and dropped.
    The summary and attach records are always kept (one per run and per probe). A map's
    whole dump replaces its previous one: only the last dump is ever matched."""

    def __init__(self, budget: int):
        self.budget = budget
        self.records: List[Dict[str, Any]] = []
        self.sizes: List[int] = []
        self.used = 0
        self.dropped: Counter[Tuple[str, str]] = collections.Counter()
        self._dumps: Dict[str, int] = {}  # map -> index of its last whole dump

    def add(self, record: Any, size: int) -> None:
        if not isinstance(record, dict):
            record = {"type": None, "value": record}
        if record.get("type") in ("summary", "attach"):
            self._append(record, 0)
            return
        key = expectations.kept_as(record)
        if key[0] == "map" and "entries" in record and key[1] in self._dumps:
            self._replace(self._dumps.pop(key[1]), key)
        if self.used + size > self.budget:
            self.dropped[key] += 1
            return
        if key[0] == "map" and "entries" in record:
            self._dumps[key[1]] = len(self.records)
        self._append(record, size)

    def too_long(self) -> None:
        self.dropped[("?", "")] += 1  # a line over the budget: not even read whole

    def _append(self, record: Dict[str, Any], size: int) -> None:
        self.records.append(record)
        self.sizes.append(size)
        self.used += size

    def _replace(self, i: int, key: Tuple[str, str]) -> None:
        """The previous dump gives up its room (an empty stand-in keeps the indexes)."""
        self.used -= self.sizes[i]
        self.sizes[i] = 0
        self.records[i] = {"type": "replaced", "map": None}

    def total_dropped(self) -> int:
        return sum(self.dropped.values())


class _Child:
    """The run under test; its stdout parsed as JSON records (kept up to KEEP_BYTES), the
    last lines of its stderr kept as text."""

    def __init__(self, argv: List[str]):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=_child_env())
        self.kept = Kept(KEEP_BYTES)
        self.bad_lines: List[str] = []  # the first few
        self.bad_count = 0
        self.err: Deque[str] = collections.deque(maxlen=ERR_LINES)
        self.is_ready = False
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [threading.Thread(target=self._read, args=(s, tag), daemon=True)
                        for s, tag in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self.readers:
            t.start()

    @property
    def records(self) -> List[Dict[str, Any]]:
        return self.kept.records

    def _read(self, stream: IO[bytes], tag: str) -> None:
        limit = self.kept.budget if tag == "out" else ERR_LINE
        for raw, whole in _lines(stream, limit):
            if tag == "err":
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.is_ready = self.is_ready or line.startswith("ebpf-run: ready")
                self.err.append(line)
            elif not whole:
                self.kept.too_long()
            else:
                self._record(raw)

    def _record(self, raw: bytes) -> None:
        try:
            record = json.loads(raw)
        except ValueError:  # also a number of more than 4300 digits
            self.bad_count += 1
            if len(self.bad_lines) < 3:
                self.bad_lines.append(raw.decode("utf-8", "replace")[:200].rstrip("\n"))
            return
        self.kept.add(record, len(raw))

    def ready(self) -> bool:
        return self.is_ready

    def wait(self, done: Any, timeout: float) -> bool:
        """Poll until done() or the child ends or the timeout; True when done() held."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if done():
                return True
            if self.proc.poll() is not None:
                return bool(done())
            time.sleep(POLL)
        return bool(done())

    def stop(self) -> Optional[int]:
        """SIGINT, as a user stops a run; the exit code, or None when it would not end."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        for t in self.readers:
            t.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self) -> str:
        return " | ".join(list(self.err)[-4:]) or "nothing on stderr"


def _lines(stream: IO[bytes], limit: int) -> Iterator[Tuple[bytes, bool]]:
    """Each line, and whether it is whole: a line longer than `limit` is read in pieces
    of `limit` and yielded once, as not whole, with its first piece."""
    while True:
        raw = stream.readline(limit)
        if not raw:
            return
        if raw.endswith(b"\n") or len(raw) < limit:
            yield raw, True
            continue
        first = raw
        while raw and not raw.endswith(b"\n"):
            raw = stream.readline(limit)
        yield first, False


def _child_env() -> Dict[str, str]:
    """This ebpf-run's own package first on the path, so the child runs the same code
    whatever the current directory is."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_argv(spec_path: str, case: TestCase) -> List[str]:
    argv = [sys.executable, "-m", "runner", "run", spec_path, "--json"]
    if case.options.count is not None:
        argv += ["--count", str(case.options.count)]
    if case.options.duration is not None:
        argv += ["--duration", str(case.options.duration)]
    for name, value in case.options.params:
        argv += ["--set", f"{name}={value}"]
    return argv


def run_case(spec_path: str, case: TestCase) -> CaseResult:
    """The case, with everything its trigger started killed at its end (see containment)."""
    start = time.monotonic()
    notes: List[str] = []
    with Box.open() as box:
        child = _Child(run_argv(spec_path, case))
        try:
            failures = _drive(child, case, box, notes)
        finally:
            child.kill()
    if child.kept.total_dropped():
        notes.append(f"{child.kept.total_dropped()} records of the run not kept (over "
                     f"{child.kept.budget} bytes)")
    return CaseResult("fail" if failures else "pass", time.monotonic() - start,
                      tuple(failures), notes=tuple(notes))


def _drive(child: _Child, case: TestCase, box: Box, notes: List[str]) -> List[Failure]:
    if not child.wait(child.ready, READY_TIMEOUT):
        rc = child.stop()
        return [Failure(f"the run did not get ready (exit {rc}): {child.stderr_tail()}")]
    trig = run_trigger(case.trigger, box)
    if trig.dropped:
        notes.append(f"{trig.dropped} bytes of the trigger's stdout not kept")
    if trig.problem:
        child.stop()
        return [Failure(trig.problem)]
    captures = trig.captures
    if case.options.count is not None or case.options.duration is not None:
        # The run ends by itself; give it its duration and a margin.
        child.wait(lambda: child.proc.poll() is not None,
                   (case.options.duration or 0) + case.trigger.timeout + STOP_TIMEOUT)
    else:
        child.wait(lambda: expectations.met_for_good(case.expect, list(child.records),
                                                     captures), case.options.settle)
    rc = child.stop()
    problems = []
    if rc != 0:
        problems.append(Failure(f"ebpf-run exited {rc}: {child.stderr_tail()}"))
    if child.bad_count:
        problems.append(Failure(f"ebpf-run printed {child.bad_count} lines that are not "
                                f"JSON: {child.bad_lines}"))
    outcomes = expectations.check_all(case.expect, child.records, captures,
                                      child.kept.dropped)
    return problems + [Failure(o.message, o.expectation.origin) for o in outcomes if not o.ok]
