"""Saying why when a compile in this process ends the process.

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
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
from typing import Callable, Iterator, Tuple

# glibc calls a __cxa_atexit function with its argument and the exit status.
_HANDLER = ct.CFUNCTYPE(None, ct.c_void_p, ct.c_int)
Say = Callable[[int], Tuple[str, int]]  # exit status -> (what to write, status to end with)


@contextlib.contextmanager
def saying(say: Say, fd: int) -> Iterator[None]:
    """While the block runs, an exit() of this process from C writes say(status)'s text to
    `fd` and ends the process with say's status instead."""
    libc = ct.CDLL(None)
    armed = [True]

    def on_exit(_arg: object, status: int) -> None:
        if not armed[0]:
            return
        code = status
        try:
            text, code = say(status)
            _write_all(fd, text.encode("utf-8", "backslashreplace"))
        finally:
            os._exit(code)  # the process was ending already: nothing else runs

    handler = _HANDLER(on_exit)  # referenced until unregistered below
    handle = ct.create_string_buffer(1)  # an address no library uses as its handle
    if libc.__cxa_atexit(handler, None, ct.byref(handle)) != 0:
        yield  # no room for a handler (out of memory): the compile goes on without
        return
    try:
        yield
    finally:
        armed[0] = False
        libc.__cxa_finalize(ct.byref(handle))  # runs it (disarmed: nothing) and drops it


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
