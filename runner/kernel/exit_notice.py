"""Saying why when a compile in this process ends the process, by exit() or by a crash.

LLVM ends the process that compiles with exit(1) on some errors (a BPF stack frame over
512 bytes that check/stack.py did not foresee), after printing why on fd 2, which the
compile captures into a file (bcc.CapturedStderr): the run then ended with status 1 and
not a word. A compiler child reports that death itself (compiler.py); a compile in this
process (one CPU, or a program the child cannot hand back) is covered here.

While such a compile runs, a C-level exit handler is registered with glibc's
__cxa_atexit under a handle of its own. If exit() comes during the compile, the handler
writes what `say` makes of it (the error the compile would have raised, with what clang
printed) where stderr was before the capture and ends the process with that error's
status. After the compile the handler is disarmed, then run once and forgotten by
__cxa_finalize of its handle: at the process's own exit, after Python's finalization,
there is no Python callback left to call.

A crash of clang or LLVM (SIGSEGV, SIGABRT from an assertion or a fatal error...) killed
the process as silently, its words in the capture too. For the same time the crash
signals (CRASHES) are caught: the handler first restores their default action (a fault
in what follows ends the process as before), then writes what `say` makes of the signal
and ends the process the same way. Each signal's previous action is saved whole and put
back after the compile. Only a signal in the thread that compiles is the compiler's: in
another thread (a kill(2) of the whole process reaches the main one) the handler leaves
the signal to its default action, as before.

The handler runs Python in a signal handler. It never returns to the interrupted code (it
is the process's last act), but the interrupted code may hold a lock the handler needs:
a crash inside malloc (glibc aborts on a corrupted heap with its arena locked) would hang
the handler's first allocation. So it first sets an alarm (SIGALRM, default action) that
ends the process CRASH_GRACE seconds later if it has not written its message by then.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import signal
import threading
from typing import Callable, Iterator, List, Tuple

# glibc calls a __cxa_atexit function with its argument and the exit status.
_HANDLER = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int)
_ON_SIGNAL = ct.CFUNCTYPE(None, ct.c_int)
# (exit status, or 0 for a crash; the crash's signal, or 0 for an exit) ->
# (what to write, status to end with)
Say = Callable[[int, int], Tuple[str, int]]
# The signals a crashing compiler dies of (their default action dumps core).
CRASHES = (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
# How long the crash handler may take before an alarm ends the process (it takes
# milliseconds, unless it waits for a lock the crashed code held: then it never finishes).
CRASH_GRACE = 10
# More than any libc's struct sigaction (152 bytes on glibc x86-64 and arm64): a previous
# action is saved and restored whole, its layout never read.
_SIGACTION_BYTES = 512


@contextlib.contextmanager
def saying(say: Say, fd: int) -> Iterator[None]:
    """While the block runs, an exit() of this process from C, or a crash, writes say's
    text to `fd` and ends the process with say's status instead."""
    libc = ct.CDLL(None)
    armed = [True]
    compiling = threading.get_native_id()

    def end(status: int, signum: int, fallback: int) -> None:
        code = fallback
        try:
            text, code = say(status, signum)
            _write_all(fd, text.encode("utf-8", "backslashreplace"))
        finally:
            os._exit(code)  # the process was ending already: nothing else runs

    def on_exit(_arg: object, status: int) -> None:
        if armed[0]:
            end(status, 0, status)

    def on_signal(signum: int) -> None:
        for s in CRASHES:
            libc.signal(s, ct.c_void_p(int(signal.SIG_DFL)))
        if not armed[0] or threading.get_native_id() != compiling:  # not the compiler's
            getattr(libc, "raise")(signum)  # delivered, by default, once this returns
            return
        libc.signal(signal.SIGALRM, ct.c_void_p(int(signal.SIG_DFL)))
        libc.alarm(CRASH_GRACE)
        end(0, signum, 128 + signum)

    handler = _HANDLER(on_exit)  # referenced until unregistered below
    handle = ct.create_string_buffer(1)  # an address no library uses as its handle
    if libc.__cxa_atexit(handler, None, ct.byref(handle)) != 0:
        yield  # no room for a handler (out of memory): the compile goes on without
        return
    catcher = _ON_SIGNAL(on_signal)  # referenced until the previous actions are back
    saved = _catch(libc, catcher)
    try:
        yield
    finally:
        armed[0] = False
        _restore(libc, saved)
        libc.__cxa_finalize(ct.byref(handle))  # runs it (disarmed: nothing) and drops it


def _catch(libc: ct.CDLL, catcher: object) -> List[Tuple[int, ct.Array]]:
    """Each crash signal's previous action, the catcher installed in its place."""
    saved = []
    for s in CRASHES:
        old = ct.create_string_buffer(_SIGACTION_BYTES)
        if libc.sigaction(s, None, old) == 0:
            saved.append((int(s), old))
            libc.signal(s, catcher)
    return saved


def _restore(libc: ct.CDLL, saved: List[Tuple[int, ct.Array]]) -> None:
    for s, old in saved:
        libc.sigaction(s, old, None)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
