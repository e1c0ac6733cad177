"""runner/kernel/exit_notice.py: an exit() from C, or a crash of the thread, inside the
block is reported, with the status `say` gives; after the block nothing is left
registered and each crash signal's previous action is back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """\
import ctypes, os, signal, sys, threading
from runner.kernel import exit_notice

def say(status, signum):
    return f"ended with {status} by signal {signum} inside\\n", 7

def caught():
    return [ln for ln in open("/proc/self/status") if ln.startswith("SigCgt")]

def work():  # in a thread of its own, as a compile runs
    before = caught()
    with exit_notice.saying(say, 1):
        if sys.argv[1] == "inside":
            ctypes.CDLL(None).exit(4)
        if sys.argv[1] == "fault":
            ctypes.string_at(0)  # a real SIGSEGV: a read of address 0
        if sys.argv[1] == "abort":
            ctypes.CDLL(None).abort()
        if sys.argv[1] == "other thread":
            signal.pthread_kill(threading.main_thread().ident, signal.SIGSEGV)
            threading.Event().wait(60)
    assert caught() == before, (before, caught())
    if sys.argv[1] == "fault after":
        ctypes.string_at(0)

thread = threading.Thread(target=work)
thread.start()
thread.join()
print("after", flush=True)
sys.exit(5)
"""


def run(where: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, where], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_an_exit_inside_the_block_says_what_say_makes_of_it():
    proc = run("inside")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        7, "ended with 4 by signal 0 inside\n", "")


def test_an_exit_after_the_block_is_the_process_own():
    # Python's own exit calls exit() after its finalization: a handler left registered
    # would call into a finalized interpreter (SIGSEGV, seen without __cxa_finalize).
    proc = run("after")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "after\n", "")


def test_a_crash_inside_the_block_says_what_say_makes_of_it():
    for where, signum in (("fault", 11), ("abort", 6)):
        proc = run(where)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            7, f"ended with 0 by signal {signum} inside\n", ""), where


def test_a_crash_of_another_thread_or_after_the_block_is_the_process_own():
    for where in ("other thread", "fault after"):
        proc = run(where)
        assert (proc.returncode, proc.stdout) == (-11, ""), (where, proc.stderr)
