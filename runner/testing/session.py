"""Run one test case: a child `ebpf-run run SPEC --json`, the trigger once it is ready,
then a stop, and the records matched against the expectations.

A child process rather than the runtime in this process: a run installs signal handlers,
owns stdout and may end in any kernel error; as a child it is isolated, stopped the way a
user stops it (SIGINT), and its exit code is part of the verdict. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO, Any, Dict, List, Optional, Tuple

from runner.model.tests import TestCase
from runner.testing import expectations
from runner.testing.triggers import run_trigger

# Compiling takes ~0.3 s here and ~10 s on a software-emulated kernel: be generous.
READY_TIMEOUT = float(os.environ.get("EBPF_RUN_READY_TIMEOUT", "120"))
STOP_TIMEOUT = 60.0
POLL = 0.05


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


class _Child:
    """The run under test; its stdout parsed as JSON records, its stderr kept as text."""

    def __init__(self, argv: List[str]):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=_child_env())
        self.records: List[Dict[str, Any]] = []
        self.bad_lines: List[str] = []
        self.err: List[str] = []
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.readers = [threading.Thread(target=self._read, args=(s, tag), daemon=True)
                        for s, tag in ((self.proc.stdout, "out"), (self.proc.stderr, "err"))]
        for t in self.readers:
            t.start()

    def _read(self, stream: IO[bytes], tag: str) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if tag == "err":
                self.err.append(line)
                continue
            try:
                self.records.append(json.loads(line))
            except ValueError:
                self.bad_lines.append(line)

    def ready(self) -> bool:
        return any(ln.startswith("ebpf-run: ready") for ln in self.err)

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
        return " | ".join(self.err[-4:]) or "nothing on stderr"


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
    start = time.monotonic()
    child = _Child(run_argv(spec_path, case))
    try:
        failures = _drive(child, case)
    finally:
        child.kill()
    return CaseResult("fail" if failures else "pass", time.monotonic() - start,
                      tuple(failures))


def _drive(child: _Child, case: TestCase) -> List[Failure]:
    if not child.wait(child.ready, READY_TIMEOUT):
        rc = child.stop()
        return [Failure(f"the run did not get ready (exit {rc}): {child.stderr_tail()}")]
    trig = run_trigger(case.trigger)
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
    if child.bad_lines:
        problems.append(Failure(f"ebpf-run printed lines that are not JSON: "
                                f"{child.bad_lines[:3]}"))
    outcomes = expectations.check_all(case.expect, child.records, captures)
    return problems + [Failure(o.message, o.expectation.origin) for o in outcomes if not o.ok]
