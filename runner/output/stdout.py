"""Standard output kept for ebpf-run's own output, and write failures made errors.

C code in the process writes to file descriptor 1 whenever it likes: libbcc prints
"Unable to find kernel headers..." with std::cout while compiling, through a stdio
buffer that may be flushed at any later time, even at exit. Under --json that text lands
in the middle of the record stream. So while a command runs, ebpf-run writes its output
to a private duplicate of stdout and points descriptor 1 at stderr: whatever a library
prints goes to stderr, and no library can write into the stream.

A failed write (a full disk, /dev/full) raises OutputUnwritable once, which the command
line reports in one line with exit code 3; later writes to the same stream are dropped,
so the interpreter's final flush cannot fail again. A closed reader (EPIPE, `| head -1`)
raises BrokenPipeError once, which ends the command quietly, and later writes are
dropped the same way.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any, Iterator

from runner.errors import EbpfRunError


class OutputUnwritable(EbpfRunError):
    """ebpf-run's output could not be written (a full disk, a bad --out directory). Exit 3,
    the code of problems with the machine rather than the spec."""

    exit_code = 3

    @classmethod
    def from_os_error(cls, what: str, e: OSError) -> OutputUnwritable:
        return cls(f"cannot write {what}: {e.strerror or e}")


class _GuardedFile(io.FileIO):
    """A file descriptor whose first write failure is raised and whose later writes are
    dropped."""

    failed = False

    def write(self, b: Any) -> int:
        if self.failed:
            return len(b)
        try:
            return super().write(b)
        except BrokenPipeError:
            self.failed = True
            raise
        except OSError as e:
            self.failed = True
            raise OutputUnwritable.from_os_error("to standard output", e) from None


@contextlib.contextmanager
def private_stdout() -> Iterator[None]:
    """For the duration: sys.stdout writes to a duplicate of descriptor 1, descriptor 1 is
    stderr. Everything is put back afterwards, for callers that go on (tests)."""
    records_fd = _private_copy_of_fd1()
    if records_fd < 0:
        yield
        return
    old = sys.stdout
    old.flush()
    saved_fd1 = os.dup(1)
    os.dup2(2, 1)
    stream = io.TextIOWrapper(io.BufferedWriter(_GuardedFile(records_fd, "w")),
                              encoding=old.encoding, errors=old.errors,
                              line_buffering=bool(old.line_buffering))
    sys.stdout = stream
    try:
        yield
    finally:
        sys.stdout = old
        # A failure here was reported already (or the command failed for another reason).
        with contextlib.suppress(OutputUnwritable, OSError):
            stream.close()
        _flush_c_stdio()
        os.dup2(saved_fd1, 1)
        os.close(saved_fd1)


def _private_copy_of_fd1() -> int:
    """A duplicate of descriptor 1, or -1 when sys.stdout is not descriptor 1 (a test's
    in-process capture: leave it alone) or no descriptor is left (keep the shared one)."""
    try:
        if sys.stdout.fileno() != 1:
            return -1
        return os.dup(1)
    except (AttributeError, OSError, ValueError):
        return -1


def _flush_c_stdio() -> None:
    """Push out what C code left in its stdio buffer for descriptor 1 while that is still
    stderr; at exit it would go to the real stdout."""
    if "ctypes" not in sys.modules:  # no C library was loaded through it: nothing to flush
        return
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).fflush(None)
