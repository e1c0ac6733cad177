"""runner/kernel/exit_notice.py: an exit() from C inside the block is reported, with the
status `say` gives; after the block nothing is left registered."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHILD = """\
import ctypes, sys, threading
from runner.kernel import exit_notice

def say(status):
    return f"ended with {status} inside\\n", 7

def work():  # in a thread of its own, as a compile runs
    with exit_notice.saying(say, 1):
        if sys.argv[1] == "inside":
            ctypes.CDLL(None).exit(4)

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
    assert (proc.returncode, proc.stdout, proc.stderr) == (7, "ended with 4 inside\n", "")


def test_an_exit_after_the_block_is_the_process_own():
    # Python's own exit calls exit() after its finalization: a handler left registered
    # would call into a finalized interpreter (SIGSEGV, seen without __cxa_finalize).
    proc = run("after")
    assert (proc.returncode, proc.stdout, proc.stderr) == (5, "after\n", "")
