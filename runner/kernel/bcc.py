"""Stage 5's door to BCC: importing it, a BPF class that attaches nothing by itself,
capturing what clang and libbcc print on fd 2, and turning BCC's bare exceptions into
reasons a user can act on. Only runner/kernel imports bcc.

The rest of the stage lives beside this module: load.py (compile), attach.py (attach
options and their hooks), tail_calls.py, ring.py / perf.py / trace_pipe.py (channels),
maps.py, environment.py, probe_support.py (the doctor's tries) and session.py (class
Kernel, which ties them together). The names the CLI and the tests import from here are
still found here (see the end of this module).
"""

from __future__ import annotations

import ctypes as ct
import errno
import importlib
import os
import tempfile
import threading
from typing import IO, Any, Optional, Tuple

from runner.errors import EnvironmentProblem

NOISE = ("modprobe: not found", "modprobe: FATAL")
_LIBBCC = b"libbcc.so.0"  # the name BCC's Python module loads (bcc/libbcc.py)
_RTLD_NOW = 2


def import_bcc() -> Any:
    """Import BCC, or say exactly how to get it."""
    try:
        import bcc
    except ImportError as e:
        raise EnvironmentProblem(
            f"BCC's Python module cannot be imported ({e}). Install it from the distribution "
            "(apt-get install python3-bpfcc) and run ebpf-run with /usr/bin/python3 or a venv "
            "made with --system-site-packages; ./scripts/setup does both. Do not pip install "
            "'bcc': that PyPI package is unrelated.") from None
    if not hasattr(bcc, "BPF"):
        raise EnvironmentProblem(
            f"the 'bcc' module at {getattr(bcc, '__file__', '?')} is not BCC (the unrelated "
            "PyPI package?). pip uninstall bcc; apt-get install python3-bpfcc") from None
    return bcc


def preload_libbcc() -> threading.Thread:
    """Start loading libbcc (and the LLVM and clang libraries it links) in a thread.

    `import bcc` spends about 20 ms in ctypes' dlopen of libbcc, which holds the GIL.
    Called through libc, dlopen runs without it, beside the caller's Python work, and
    BCC's own dlopen then finds the library loaded. If this fails, `import bcc` loads it
    as before (and says what is missing). Do not fork while the thread runs: a child
    would inherit the dynamic loader's lock held (join it first).
    """
    def load() -> None:
        libc = ct.CDLL(None)
        libc.dlopen.restype = ct.c_void_p
        libc.dlopen.argtypes = [ct.c_char_p, ct.c_int]
        libc.dlopen(_LIBBCC, _RTLD_NOW)  # the mode ctypes uses: one handle, shared

    # A daemon: an exit that comes first (an error) need not wait for it.
    thread = threading.Thread(target=load, name="ebpf-run libbcc", daemon=True)
    thread.start()
    return thread


def quiet_bpf_class(bcc: Any) -> Any:
    """BCC's BPF, minus attaching by function-name prefix while compiling.

    BCC attaches functions named kprobe__*, kfunc__* and so on from its constructor, before
    any table is filled and with no fallback. ebpf-run attaches everything itself, in order.
    """

    class QuietBPF(bcc.BPF):  # type: ignore[misc, name-defined]
        def _trace_autoload(self) -> None:
            return None

    return QuietBPF


def reason(e: Exception) -> str:
    """One line saying why BCC failed, in the kernel's terms where BCC's words mislead."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if text == "Need super-user privileges to run" and os.geteuid() == 0:
        # BCC words every EPERM from a load as a privilege problem; as root it is the kernel.
        return "the kernel refused to load the program (EPERM) although we are root"
    if "not traceable" in text or ("Failed to attach BPF program" in text and "kprobe" in text):
        return f"{text} (kernel has no kprobes, or the function cannot be probed)"
    return text


# What libbcc and libbpf print after a failed system call ends in its strerror() text.
_ERRNO_TEXTS = tuple(sorted({os.strerror(e) for e in errno.errorcode}, key=len, reverse=True))


def failure_detail(captured: str, why: str) -> Optional[str]:
    """What to add to `why` from what libbcc printed on fd 2 while it failed: the last line
    naming a system call's error (BCC's exception often leaves it out, EPERM included),
    else a short reason's last line; else the errno ctypes kept from libbcc's last call
    (set to 0 before the attempt), as `Operation not permitted (EPERM)`."""
    lines = [ln.strip() for ln in captured.splitlines() if ln.strip()]
    detail = next((ln for ln in reversed(lines) if ln.endswith(_ERRNO_TEXTS)), None)
    if detail is None and lines and len(why) < 40:
        detail = lines[-1]
    if detail is None and ct.get_errno() and os.strerror(ct.get_errno()) not in why:
        err = ct.get_errno()
        detail = f"{os.strerror(err)} ({errno.errorcode.get(err, err)})"
    return None if detail is None or detail in why else detail


# fd 2 belongs to the whole process: captures in two threads at once (a compile in its
# thread, a detach in the main one) would interleave their dup2s and could leave fd 2 on
# the first one's file for good. Reentrant: a capture may hold another in its thread.
_CAPTURE = threading.RLock()


class CapturedStderr:
    """Collect what clang and libbcc write to fd 2 during a compile, minus known noise.

    Everything the process writes to fd 2 meanwhile lands in the file too: ebpf-run's own
    output goes through a descriptor of its own (runtime/run.py's writers)."""

    def __enter__(self) -> CapturedStderr:
        _CAPTURE.acquire()
        try:
            return self._enter()
        except BaseException:
            _CAPTURE.release()
            raise

    def _enter(self) -> CapturedStderr:
        self.text = ""
        self.file: Optional[IO[bytes]] = None
        try:
            self.file = tempfile.TemporaryFile(mode="w+b")  # noqa: SIM115 (closed in _exit)
            self.saved = os.dup(2)
        except OSError:
            # Out of descriptors (EMFILE): what it guards (an attach, a detach) must still
            # happen; libbcc's words then reach stderr as they are.
            if self.file is not None:
                self.file.close()
                self.file = None
            return self
        os.dup2(self.file.fileno(), 2)
        return self

    @property
    def outside(self) -> int:
        """The descriptor that is stderr outside the capture."""
        return self.saved if self.file is not None else 2

    def so_far(self) -> str:
        """What was captured until now, minus noise (the capture goes on)."""
        if self.file is None:
            return ""
        chunks, offset, fd = [], 0, self.file.fileno()
        while chunk := os.pread(fd, 1 << 20, offset):
            chunks.append(chunk)
            offset += len(chunk)
        return without_noise(b"".join(chunks).decode("utf-8", "replace"))

    def __exit__(self, *exc: object) -> None:
        try:
            self._exit()
        finally:
            _CAPTURE.release()

    def _exit(self) -> None:
        if self.file is None:
            return
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        raw = self.file.read().decode("utf-8", "replace")
        self.file.close()
        self.text = without_noise(raw)


def without_noise(text: str) -> str:
    """What clang and libbcc printed, minus the lines that never mean anything (NOISE)."""
    return "\n".join(ln for ln in text.splitlines() if not ln.startswith(NOISE))


def check_privileges() -> None:
    if os.geteuid() == 0 or _has_caps(("bpf", 39), ("perfmon", 38)):
        return
    raise EnvironmentProblem("loading BPF programs needs root, or CAP_BPF and CAP_PERFMON: "
                             "run ebpf-run with sudo")


def _has_caps(*caps: Tuple[str, int]) -> bool:
    try:
        with open("/proc/self/status") as f:
            eff = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapEff:"))
    except (OSError, StopIteration, ValueError):
        return False
    return all(eff & (1 << bit) for _, bit in caps)


# The stage's public names, where runner/cli/doctor.py and the tests find them. Looked up
# on first use (PEP 562): the modules that define them import the helpers above, so
# importing them here, at import time, would be circular.
_ELSEWHERE = {
    "Attached": "runner.kernel.attach",
    "HEADERS_FIX": "runner.kernel.environment",
    "TRACEFS": "runner.kernel.environment",
    "check_headers": "runner.kernel.environment",
    "tracefs_mounted": "runner.kernel.environment",
    "bcc_info": "runner.kernel.probe_support",
    "try_attach_kinds": "runner.kernel.probe_support",
    "Kernel": "runner.kernel.session",
    "KernelError": "runner.errors",
}


def __getattr__(name: str) -> Any:
    if name not in _ELSEWHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_ELSEWHERE[name]), name)
