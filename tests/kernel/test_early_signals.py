"""SIGINT and SIGTERM in the first tenth of a second of a run, as the README documents it.

From ebpf-run's first line on (runner/__main__.py), a signal before anything is
attached ends the run with a summary and 0. Before that line, in Python's own start-up, it
ends the process as for any Python program: killed by the signal, or for SIGINT a
KeyboardInterrupt in the interpreter's imports or a "Fatal Python error", with nothing of
ours on the stack and nothing loaded; or, for SIGINT, Python reports the KeyboardInterrupt
as "Exception ignored" and goes on, and a second SIGINT ends the run with its summary.
Never a traceback through our code, never a silent exit (a silent 130 when SIGINT came
while the CLI imported its signal handling; a silent 0 when the summary went into the
file an in-process compile holds fd 2 on). A run is never left behind, whatever happens.
tests/unit/test_early_signals.py checks deterministically that the hold comes first.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from harness import ROOT, loaded_programs
from harness import early_signal_outcome as outcome

SPEC = """\
    name: early
    probes:
      early:
        attach: {tracepoint: "syscalls:sys_enter_getppid"}
        do: [{print: "getppid"}]
    """
DELAYS = (0.0, 0.005, 0.01, 0.02, 0.04, 0.08)  # after spawn, in seconds
SCRIPT = ROOT / ".venv" / "bin" / "ebpf-run"
WAIT_S = 20  # a stop waits for a compile in this process (seconds on the host)


@pytest.mark.host_only  # Python's start-up, the same on every kernel
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("how", ["module", "script"])
def test_early_signals_end_as_documented(tmp_path, sig, how):
    if how == "script" and not SCRIPT.exists():
        pytest.skip("no console script: run ./scripts/setup")
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    cmd = [str(SCRIPT)] if how == "script" else [sys.executable, "-m", "runner"]
    seen = []
    for delay in (*DELAYS, *DELAYS, "held"):
        proc = subprocess.Popen([*cmd, str(spec)], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if delay == "held":  # once our handlers are in: always the summary
            while not catches_sigterm(proc.pid):  # (Python itself catches SIGINT early)
                assert proc.poll() is None
                time.sleep(0.001)
        else:
            time.sleep(delay)
        seen.append((delay, ended(proc, sig)))
    assert seen[-1] == ("held", "summary"), seen
    end = time.monotonic() + 5
    while (left := [p for p in loaded_programs() if p.get("name", "").startswith("er_early")]) \
            and time.monotonic() < end:
        time.sleep(0.1)
    assert not left, left
    print(f"\n{how} {sig.name}: {seen}")


def ended(proc: subprocess.Popen, sig: int) -> str:
    """Send `sig`; how the run ended. Never leaves the process running."""
    try:
        proc.send_signal(sig)
        try:
            err = proc.communicate(timeout=WAIT_S)[1]
        except subprocess.TimeoutExpired:
            # Python's start-up can take a SIGINT as a KeyboardInterrupt inside a callback
            # whose exceptions it only reports ("Exception ignored in ..."), and go on: the
            # run then goes on too, as the README says, and a second Ctrl-C stops it.
            proc.send_signal(sig)
            err = proc.communicate(timeout=WAIT_S)[1]
            return swallowed(sig, proc.returncode, err)
        return outcome(sig, proc.returncode, err)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def swallowed(sig: int, rc: int, err: str) -> str:
    before, _, ours = err.partition("ebpf-run: ")
    assert sig == signal.SIGINT and rc == 0, (rc, err)
    assert "Exception ignored" in before and "KeyboardInterrupt" in before, err
    assert "/runner/" not in before, err  # in Python's start-up, not in our code
    assert "summary:" in ours, err
    return "ignored by Python's start-up"


def catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a handler for SIGTERM (SigCgt in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def test_the_hold_is_ours(tmp_path):
    """Sanity of the oracle above: a traceback through runner/ is caught by it."""
    with pytest.raises(AssertionError):
        outcome(signal.SIGINT, -2, f'File "{Path(ROOT, "runner", "x.py")}", line 1\n'
                                   "KeyboardInterrupt")
