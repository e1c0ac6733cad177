"""BCC's compile with a /proc/kallsyms of two lines.

Every BCC compile reads all of /proc/kallsyms (122,000 lines on the development machine:
about 100 ms, two thirds of the compile) for one answer: whether the kernel has the
helpers bpf_probe_read_kernel and bpf_probe_read_user, else it writes bpf_probe_read
(check_bpf_probe_read_kernel and _user in bcc's b_frontend_action.cc). Every kernel from
5.5 on has both. There the compile runs in a thread of its own (or in the compiler child,
compiler.py) that first moves to a private copy of the mount namespace, a slave of the
host's so nothing mounted in it is seen outside, and bind-mounts a file naming just those
two helpers over /proc/kallsyms. The rest of this process and every other process see the
real file, and the namespace ends with the thread. BCC 0.26 reads the file again on every
compile, so every compile runs this way.

Whatever fails on the way (no CAP_SYS_ADMIN, a seccomp filter) leaves the compile reading
the real file, as BCC alone would: slower, never different.
"""

from __future__ import annotations

import ctypes as ct
import os
import threading
from typing import Callable, Generic, List, Tuple, TypeVar

T = TypeVar("T")

_CLONE_NEWNS = 0x00020000
_MS_BIND, _MS_REC, _MS_SLAVE = 4096, 16384, 1 << 19
_MNT_DETACH = 2
# The addresses only have to look like a kernel's: BCC asks whether the names exist.
_LINES = (b"ffffffff81000000 T bpf_probe_read_kernel\n"
          b"ffffffff81000010 T bpf_probe_read_user\n")
_FIRST_WITH_BOTH = (5, 5)
KALLSYMS = "/proc/kallsyms"

# Tests turn it off to compare a compile made with the real file.
enabled = True


class Pending(Generic[T]):
    """work() running in its own thread: result() waits for it and returns what it
    returned or raises what it raised."""

    def __init__(self, work: Callable[[], T]):
        self._work = work
        self._outcome: List[Tuple[bool, object]] = []
        self._thread = threading.Thread(target=self._run, name="ebpf-run compile")
        self._thread.start()

    def _run(self) -> None:
        enter_view()
        try:
            self._outcome.append((True, self._work()))
        except BaseException as e:  # handed to the waiting thread, raised there
            self._outcome.append((False, e))

    def result(self) -> T:
        self._thread.join()
        ok, value = self._outcome[0]
        if not ok:
            raise value  # type: ignore[misc]
        return value  # type: ignore[return-value]


def run(work: Callable[[], T]) -> T:
    return Pending(work).result()


def enter_view() -> None:
    """This thread's own mount namespace with the short file over /proc/kallsyms, if the
    kernel is new enough; on any failure, as much as was done (a private copy of the
    namespace is harmless)."""
    if enabled and _release() >= _FIRST_WITH_BOTH:
        _enter_view()


def _enter_view() -> None:
    libc = ct.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ct.c_char_p, ct.c_char_p, ct.c_char_p, ct.c_ulong, ct.c_void_p]
    libc.umount2.argtypes = [ct.c_char_p, ct.c_int]
    if libc.unshare(_CLONE_NEWNS) != 0:
        return
    # Without this, a mount here would propagate to the host's namespace (systemd makes
    # / shared): never mount unless it succeeded.
    if libc.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None) != 0:
        return
    # The short file lives in a tmpfs mounted, in this namespace only, over a directory
    # for the moment it takes to bind it: nothing is written where others could see it
    # or where a kill could leave it.
    for scratch in (b"/run", b"/tmp"):
        if libc.mount(b"ebpf-run", scratch, b"tmpfs", 0, b"size=16k,mode=0700") == 0:
            break
    else:
        return
    try:
        path = os.path.join(scratch, b"kallsyms")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o444)
        try:
            os.write(fd, _LINES)
        finally:
            os.close(fd)
        libc.mount(path, KALLSYMS.encode(), None, _MS_BIND, None)
    except OSError:
        pass  # the compile reads the real file
    finally:
        libc.umount2(scratch, _MNT_DETACH)  # the bind keeps the file


def _release() -> Tuple[int, int]:
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)
