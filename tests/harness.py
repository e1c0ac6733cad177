"""Run ebpf-run as a user would, in a subprocess, and read what it printed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
# Compiles take ~0.3 s here but ~15-35 s under software emulation (the 6.1 VM), and more
# beside a CPU-bound workload and a bpftrace compiling on the VM's two CPUs (a profile test
# there passed 120 s on a busy host).
READY_TIMEOUT = float(os.environ.get("EBPF_RUN_READY_TIMEOUT",
                                     "300" if os.environ.get("EBPF_RUN_VM") == "1" else "120"))
# Everything runs 3-5x slower in the second-kernel VM (tests/vm/run sets EBPF_RUN_VM=1).
SLOW = 5.0 if os.environ.get("EBPF_RUN_VM") == "1" else 1.0


class Run:
    """One ebpf-run process; collects stdout and stderr lines as they arrive."""

    def __init__(self, *args: str, env: Optional[dict] = None, prefix: Sequence[str] = ()):
        # prefix: a command that runs ebpf-run, such as setpriv with its options
        self.args = [*prefix, sys.executable, "-m", "runner", *args]
        self.proc = subprocess.Popen(
            self.args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        self.out: List[str] = []
        self.err: List[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, d), daemon=True)
                         for s, d in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self._threads:
            t.start()

    @staticmethod
    def _read(stream, dest: List[str]) -> None:
        for raw in iter(stream.readline, b""):
            dest.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the readers catch up
                if predicate():
                    return
                raise AssertionError(f"ebpf-run exited ({self.proc.returncode}) before {what}:"
                                     f"\nstdout: {self.out}\nstderr: {self.err}")
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}:\nstdout: {self.out}\n"
                             f"stderr: {self.err}")

    def wait_ready(self) -> Run:
        self.wait_for(lambda: any("ready" in ln for ln in self.err), READY_TIMEOUT, "ready")
        return self

    def wait_output(self, predicate, timeout: float = 10, what: str = "output") -> None:
        self.wait_for(lambda: predicate(self.out), timeout * SLOW, what)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.finish(timeout)

    def finish(self, timeout: float = 60) -> int:
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"ebpf-run did not exit: {self.err}") from None
        for t in self._threads:
            t.join(5)
        return rc

    def json(self) -> List[dict]:
        return [json.loads(ln) for ln in self.out]

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def drain(fd: int) -> None:
    """Read a pty's master side until its child side closes."""
    try:
        while os.read(fd, 1024):
            pass
    except OSError:  # EIO once the child side closes
        pass


def trigger_exec() -> int:
    """A shell that prints its pid then execs /bin/true: two execve calls, a known pid."""
    # Absolute paths: a PATH search would add an execve per directory tried.
    out = subprocess.run(["/bin/sh", "-c", "echo $$; exec /bin/true"], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip())


def loaded_programs() -> List[dict]:
    """Every BPF program in the kernel, from bpftool."""
    out = subprocess.run(["bpftool", "-j", "prog", "show"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout or "[]")


def ebpf_run_programs() -> List[str]:
    """Names of loaded programs that ebpf-run generated: er_*, and kfunc__* for fentry
    (BCC names trampoline programs after their kernel function)."""
    return [p.get("name", "") for p in loaded_programs()
            if p.get("name", "").startswith(("er_", "kfunc__"))]


def early_signal_outcome(sig: int, rc: int, err: str) -> str:
    """How a run sent `sig` early ended, as the README documents it ("summary" or "before
    our first line"); AssertionError for anything else. From ebpf-run's first line on: a
    summary and 0. Before it, in Python's own start-up: killed by the signal (perhaps after
    Python's KeyboardInterrupt traceback), or for SIGINT status 1 with a KeyboardInterrupt
    ("Fatal Python error", "Could not import runpy module"); never a frame of our code."""
    if rc == 0:
        assert "summary:" in err and "Traceback" not in err, err
        return "summary"
    assert "/runner/" not in err, f"a traceback through our code (rc {rc}):\n{err}"
    if rc == -sig and (not err or "KeyboardInterrupt" in err):
        return "before our first line"
    assert sig == signal.SIGINT and rc == 1 and "KeyboardInterrupt" in err, (rc, err)
    return "before our first line"
