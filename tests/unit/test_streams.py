"""streams.FdWriter: every byte arrives, whatever signals interrupt the writes, and a
stopped run does not wait forever on a stdout nobody reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from runner.runtime.signals import Stop
from runner.runtime.streams import FdWriter

from .util import ROOT


def lines(n: int) -> str:
    return "".join(f'{{"type": "event", "n": {i}, "data": {{"x": "{"y" * 40}"}}}}\n'
                   for i in range(n))


def test_signals_during_blocked_writes_lose_nothing():
    """The bug this writer fixes: with PYTHONUNBUFFERED=1, sys.stdout dropped the rest of a
    chunk when a signal interrupted a partial write to a full pipe, gluing two records.
    (With io.TextIOWrapper(io.FileIO(w, "w"), write_through=True) in place of the
    FdWriter, this test loses 5-95% of the text.)"""
    text = lines(40_000)  # 3 MB: many times the pipe's 64 KiB
    r, w = os.pipe()
    got = bytearray()
    stop_signals = threading.Event()

    def read_slowly() -> None:
        while chunk := os.read(r, 3000):
            got.extend(chunk)
            time.sleep(0.0002)

    def interrupt(main: int) -> None:
        while not stop_signals.wait(0.003):
            signal.pthread_kill(main, signal.SIGUSR1)

    saved = signal.signal(signal.SIGUSR1, lambda *_: None)
    reader = threading.Thread(target=read_slowly)
    pest = threading.Thread(target=interrupt, args=(threading.get_ident(),))
    reader.start()
    pest.start()
    try:
        writer = FdWriter(w, "utf-8", Stop())
        chunks = text.splitlines(keepends=True)
        for i in range(0, len(chunks), 1000):
            writer.write("".join(chunks[i:i + 1000]))
            writer.flush()
    finally:
        stop_signals.set()
        pest.join()
        os.close(w)
        reader.join()
        os.close(r)
        signal.signal(signal.SIGUSR1, saved)
    assert got.decode() == text
    assert writer.dropped == 0


def test_after_a_stop_a_stdout_nobody_reads_is_given_up():
    r, w = os.pipe()
    stop = Stop()
    stop.request("SIGINT")
    writer = FdWriter(w, "utf-8", stop, stall_s=0.2)
    writer.write(lines(5000))  # 400 KB: more than the pipe holds
    done = threading.Thread(target=writer.flush)
    done.start()
    done.join(30)
    os.close(w)
    os.close(r)
    assert not done.is_alive(), "the writer waited for a reader that never came"
    assert 0 < writer.dropped < len(lines(5000))
    writer.write("more\n")
    writer.flush()  # once given up, later output is dropped too (it would be out of order)
    assert writer.dropped > 0


def test_a_blocked_writer_runs_the_stop_check_while_it_waits():
    r, w = os.pipe()
    stop = Stop()
    waits = []

    def check() -> None:  # what Runner.check_stop does when --duration is over
        waits.append(1)
        if len(waits) == 3:
            stop.request("duration")

    writer = FdWriter(w, "utf-8", stop, on_wait=check, stall_s=0.1)
    writer.write(lines(5000))
    done = threading.Thread(target=writer.flush)
    done.start()
    done.join(30)
    os.close(w)
    os.close(r)
    assert not done.is_alive()
    assert len(waits) >= 3 and stop.reason == "duration" and writer.dropped > 0


def test_a_regular_file_gets_everything(tmp_path):
    path = tmp_path / "out"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    writer = FdWriter(fd, "utf-8", Stop())
    assert not writer.may_block
    writer.write("a\udc80b\n")  # a lone surrogate (a {x:c} format) is escaped, not fatal
    writer.write(lines(100))
    writer.flush()
    os.close(fd)
    assert path.read_text() == "a\\udc80b\n" + lines(100)


# Run in a child: these move its fd 2, which pytest's own output must keep.
_NOTE_DURING_CAPTURE = """
import sys, threading
from runner.kernel.bcc import CapturedStderr
from runner.runtime.run import fd_writer
from runner.runtime.signals import Stop

err = fd_writer(sys.stderr, Stop())  # as run_spec makes it, before any compile begins
inside, done = threading.Event(), threading.Event()

def compile_thread():  # what load.py's compile thread does around clang
    with CapturedStderr() as captured:
        inside.set()
        done.wait()
    sys.stdout.write("captured: " + captured.text)

t = threading.Thread(target=compile_thread)
t.start()
inside.wait()
err.write("ebpf-run: summary: ran 0.0s\\n")  # the main thread's note, mid-compile
err.flush()
done.set()
t.join()
"""


def test_a_note_written_while_a_compile_captures_fd_2_reaches_stderr():
    """A stop during an in-process compile: the summary went into the compile's capture
    file, and the run ended with 0 and nothing said."""
    out = subprocess.run([sys.executable, "-c", _NOTE_DURING_CAPTURE], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=True)
    assert out.stderr == "ebpf-run: summary: ran 0.0s\n"
    assert out.stdout == "captured: "


_TWO_CAPTURES = """
import os, sys, threading, time
from runner.kernel.bcc import CapturedStderr

before = os.fstat(2).st_ino
a_in, b_started, a_may_leave, a_left = (threading.Event() for _ in range(4))

def a():
    with CapturedStderr():
        a_in.set()
        a_may_leave.wait()
    a_left.set()

def b():
    a_in.wait()
    b_started.set()
    with CapturedStderr():  # waits for a's capture to end, rather than interleave
        os.write(2, b"from b\\n")
        a_left.wait(5)  # unguarded, b would end last and put a's file back on fd 2

ta, tb = threading.Thread(target=a), threading.Thread(target=b)
ta.start(); tb.start()
b_started.wait()
time.sleep(0.2)  # b is in its capture now, or waiting to enter it
a_may_leave.set()
ta.join(); tb.join()
with CapturedStderr():  # nested in one thread: the inner one ends on the outer's file
    with CapturedStderr() as inner:
        os.write(2, b"inner\\n")
print(os.fstat(2).st_ino == before, repr(inner.text))
"""


def test_captures_in_two_threads_leave_fd_2_where_it_was():
    """Interleaved, thread A's capture restored the real stderr first and thread B's then
    put A's file back on fd 2 for good: every later line went nowhere."""
    out = subprocess.run([sys.executable, "-c", _TWO_CAPTURES], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=True)
    assert out.stdout == "True 'inner'\n", out
    assert out.stderr == ""
