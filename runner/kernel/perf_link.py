"""Tracepoints attached through a BPF link, so that many of them stop in well under a second.

Measured on 6.18 (2 CPUs), closing one tracepoint perf event that carries a BPF program
costs about 80 ms, in two waits: detaching the program waits for an RCU tasks-trace grace
period (outside any lock: closes in parallel share it), and tearing the perf event down
waits for the tracepoint's unregistration to be synchronized while holding the kernel's
event_mutex (about 35 ms, one tracepoint at a time whatever the number of threads). BCC
attaches with PERF_EVENT_IOC_SET_BPF, where the only detach is that close: 1,000 probes
took 57 s to stop. So here:

- the program is attached to the perf event through a link (BPF_LINK_CREATE, kernel 5.15
  and later); closing the link detaches it, and those closes run side by side
  (close_in_parallel): the detach of every probe costs about one grace period;
- the perf event, bare from then on (no program, disabled: it produces nothing), is closed
  last by hand_off: a short-lived process inherits the descriptors and ends at once, and
  the kernel finishes the teardown in that process's exit, after ebpf-run has exited.

Where a link cannot be made (older kernel, other architecture) attach_tracepoint returns
None and the caller attaches through BCC as before.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import errno
import fcntl
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, Tuple

from runner.errors import KernelError
from runner.kernel import environment as env

# (perf_event_open, bpf) system call numbers; elsewhere BCC attaches.
_SYSCALLS = {"x86_64": (298, 321), "aarch64": (241, 280)}
PERF_TYPE_TRACEPOINT = 2
PERF_SAMPLE_RAW = 1 << 10
PERF_SAMPLE_CALLCHAIN = 1 << 5
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_ATTR_SIZE = 112  # PERF_ATTR_SIZE_VER5: every kernel we run on knows it
PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
BPF_LINK_CREATE = 28
BPF_PERF_EVENT = 41
BPF_ATTR_SIZE = 48
# Threads closing links at once: each close sleeps in the kernel for a grace period, which
# concurrent closes share, so more threads mean fewer rounds (1,000 probes: 8 rounds).
MAX_THREADS = 128
# errnos after which a link is not possible here, and BCC's attach is tried instead.
_NO_LINK = (22, 95, 524)  # EINVAL, EOPNOTSUPP, ENOTSUPP (kernel's)

_libc = ct.CDLL(None, use_errno=True)
HANDED: List[subprocess.Popen] = []  # the children hand_off started


def _error(what: str, target: str) -> KernelError:
    err = ct.get_errno()
    return KernelError(f"{what} for tracepoint {target}: {os.strerror(err)} "
                       f"({_errno_name(err)})")


def _errno_name(err: int) -> str:
    return errno.errorcode.get(err, str(err))


def _open_event(nr: int, target: str) -> int:
    """A perf event on the tracepoint, as BCC opens it (pid -1, CPU 0: every task)."""
    cat, _, name = target.partition(":")
    try:
        with open(f"{env.TRACEFS}/events/{cat}/{name}/id") as f:
            tp_id = int(f.read())
    except (OSError, ValueError) as e:
        raise KernelError(f"cannot read the id of tracepoint {target}: {e}") from None
    attr = bytearray(PERF_ATTR_SIZE)
    struct.pack_into("IIQQQ", attr, 0, PERF_TYPE_TRACEPOINT, PERF_ATTR_SIZE, tp_id, 1,
                     PERF_SAMPLE_RAW | PERF_SAMPLE_CALLCHAIN)
    struct.pack_into("I", attr, 48, 1)  # wakeup_events
    buf = ct.create_string_buffer(bytes(attr), PERF_ATTR_SIZE)
    fd = _libc.syscall(nr, buf, -1, 0, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise _error("perf_event_open", target)
    return int(fd)


def _link(nr: int, prog_fd: int, perf_fd: int) -> int:
    """The link's fd, or -errno."""
    attr = struct.pack("IIII", prog_fd, perf_fd, BPF_PERF_EVENT, 0)
    buf = ct.create_string_buffer(attr + bytes(BPF_ATTR_SIZE - len(attr)), BPF_ATTR_SIZE)
    fd = _libc.syscall(nr, BPF_LINK_CREATE, buf, BPF_ATTR_SIZE)
    return int(fd) if fd >= 0 else -ct.get_errno()


def attach_tracepoint(prog_fd: int, target: str) -> Optional[Tuple[int, int]]:
    """(link fd, perf event fd) with the program attached; None where links are not
    supported (the caller attaches through BCC). KernelError says why an attach failed."""
    nrs = _SYSCALLS.get(os.uname().machine)
    if nrs is None:
        return None
    perf_fd = _open_event(nrs[0], target)
    link = _link(nrs[1], prog_fd, perf_fd)
    if link < 0:
        os.close(perf_fd)
        if -link in _NO_LINK:
            return None
        ct.set_errno(-link)
        raise _error("BPF_LINK_CREATE", target)
    try:
        fcntl.ioctl(perf_fd, PERF_EVENT_IOC_ENABLE, 0)
    except OSError as e:
        os.close(link)
        os.close(perf_fd)
        raise KernelError(f"cannot enable the perf event of tracepoint {target}: "
                          f"{e.strerror}") from None
    return link, perf_fd


def disable(perf_fd: int) -> None:
    """A bare perf event produces nothing once disabled, until it is closed."""
    with contextlib.suppress(OSError):  # no program runs from it any more in any case
        fcntl.ioctl(perf_fd, PERF_EVENT_IOC_DISABLE, 0)


def close_in_parallel(closes: Sequence[Callable[[], None]]) -> List[Optional[Exception]]:
    """Run every close at once (each releases the GIL in its system call); what each
    raised, in order (None: it worked)."""
    if len(closes) <= 1:
        return [_run(c) for c in closes]
    with ThreadPoolExecutor(min(len(closes), MAX_THREADS),
                            thread_name_prefix="ebpf-run detach") as pool:
        return list(pool.map(_run, closes))


def _run(close: Callable[[], None]) -> Optional[Exception]:
    try:
        close()
    except Exception as e:  # reported by the caller, with the probe's name
        return e
    return None


def hand_off(fds: Sequence[int]) -> None:
    """Close `fds`, leaving their last reference to a process that exits at once.

    Tearing down a bare tracepoint perf event takes tens of milliseconds, one event at a
    time in the kernel (see the module's docstring). A child started with only these
    descriptors (and /dev/null) ends immediately; its exit closes them, which the kernel
    finishes after ebpf-run is gone. No program is attached to them any more. If the child
    cannot be started, they are closed here, slowly but surely."""
    if not fds:
        return
    with contextlib.suppress(OSError):
        # -S -c '': the interpreter ends before importing anything. Not waited for (kept
        # here so that Python does not warn of it): once we exit, init reaps it.
        HANDED.append(subprocess.Popen(
            [sys.executable, "-S", "-c", ""], pass_fds=tuple(fds), stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
