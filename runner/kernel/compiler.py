"""The compile in a child process, forked while the parent still checks and renders.

On a first run the compile is the longest step, and before it the parent must import BCC
(about 20 ms of dlopen of libbcc, LLVM and clang, holding the GIL); a compile in a thread
of the same process also slows the parent's imports beside it (the GIL, the dynamic
loader's lock). So as soon as ebpf-run knows it will have to compile (the spec is not in
the render cache) it forks a child. The child imports BCC on the other CPU while the
parent checks and renders, compiles the C the parent then sends (with the short
/proc/kallsyms of kallsyms_view.py), and answers with what the compiled-program cache
would hold: the instructions and the map definitions (object_cache.CompiledObject). The
parent, which imported BCC and the rest of ebpf-run meanwhile, creates the maps and loads
the programs from that answer, as on a cache hit (cached_bpf.py). No BPF object crosses
over: the child's maps close when it exits.

A child that cannot help (a program the cache cannot hold, a child that could not be
forked, failed in its own Python or was killed with SIGKILL) leaves the parent compiling
in-process, as before. A child that ended otherwise without a word died in the compile:
LLVM calls exit(1) on some errors (a frame over the 512-byte BPF stack) after printing
why, and a crash in clang would take the parent's process too. So the parent does not
compile again: it reports what the child printed (its fd 2 is a file the parent reads),
as the error of a compile; a child that a crash signal killed (SIGSEGV, SIGABRT...:
exit_notice.CRASHES) is reported as the compiler's crash (CRASHED). An in-process compile
that LLVM ends or that crashes reports the same itself (exit_notice.py).

The C goes to the child in a file, and the pipe only says it is there: a child that is
stopped (SIGSTOP) or slow never blocks the parent in a write. The parent waits for the
answer in short polls and gives up when the run is asked to stop (SIGINT, SIGTERM), so
the wait can always be interrupted. The child ignores the signals that stop a run: the
parent decides, and kills it with SIGKILL if it is not done; if the parent dies, the
kernel kills it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import faulthandler
import json
import os
import select
import signal
from typing import Any, Callable, List, Optional, Tuple

# Imported where used: this module is imported before the fork, where every millisecond
# delays the compile; the rest is imported by the child, or by the parent while it waits.

_PR_SET_PDEATHSIG = 1
# What the child answers: one JSON object with one of these keys. STOPPED and CRASHED are
# the parent's own outcomes: the run was asked to stop before the answer came, or a crash
# signal killed the child.
OBJECT, ERROR, NONE, STOPPED, CRASHED = "object", "error", "none", "stopped", "crashed"
# How often the parent looks at its stop request while it waits for the child.
_POLL_MS = 50


def _codec() -> Any:
    from runner.kernel.object_cache import CompiledObject
    from runner.support.frozen_json import Codec

    return Codec([CompiledObject]), CompiledObject


class Compiler:
    """A forked child waiting for one C source to compile."""

    def __init__(self) -> None:
        # Made before the fork, so both sides hold them: the C to compile, and everything
        # the child writes on fd 2 (read only if its answer is an error, or none at all).
        # Files in memory: no import of tempfile before the fork, nothing on disk.
        self._source = os.memfd_create("ebpf-run-source", os.MFD_CLOEXEC)
        self._stderr = os.memfd_create("ebpf-run-stderr", os.MFD_CLOEXEC)
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(self._to_child)
            os.close(self._from_child)
            _child(parent, to_child, from_child, self._source, self._stderr)
        os.close(to_child)
        os.close(from_child)
        self.status: Optional[int] = None  # the child's wait status, once reaped

    def send(self, c_source: str) -> bool:
        """Give the child the C to compile. False, and the child ended, if what it
        compiled could not come back as instructions (a program needing BCC's BTF:
        object_cache.py) or the C could not be written: the caller then compiles it
        itself."""
        from runner.kernel.object_cache import needs_module

        if needs_module(c_source):
            self.close()
            return False
        try:
            _write_all(self._source, c_source.encode())
        except OSError:  # out of memory: the caller compiles it itself
            self.close()
            return False
        fd, self._to_child = self._to_child, -1
        try:
            os.write(fd, b"1")  # one byte into an empty pipe: never blocks
        except OSError:
            pass  # a dead child: receive() says so
        finally:
            os.close(fd)
        return True

    def receive(self, should_stop: Callable[[], bool] = lambda: False) -> Tuple[str, Any]:
        """(OBJECT, CompiledObject), (ERROR, (BCC's message, what clang printed)),
        (CRASHED, (the signal, what the child printed)), (NONE, why) or, if
        `should_stop` said so first, (STOPPED, None); the child is gone afterwards."""
        try:
            data = _read_all(self._from_child, should_stop)
        finally:
            self._end_child()
        try:
            return self._answer(data)
        finally:
            self.close()

    def _answer(self, data: Optional[bytes]) -> Tuple[str, Any]:
        if data is None:
            return STOPPED, None
        if not data and _killed(self.status):  # by someone else (the OOM killer...)
            return NONE, f"the compiler process {_ended(self.status)}"
        if not data and _crashed(self.status):
            return CRASHED, (os.WTERMSIG(self.status or 0), self._printed())
        if not data:  # it died compiling: what it printed says why
            return ERROR, (f"the compiler process {_ended(self.status)} while compiling",
                           self._printed())
        codec, compiled_object = _codec()
        try:
            reply = json.loads(data)
            if OBJECT in reply:
                return OBJECT, codec.loads(reply[OBJECT].encode(), compiled_object)
            if ERROR in reply:
                return ERROR, (str(reply[ERROR]), self._printed())
            return NONE, str(reply.get(NONE))
        except (ValueError, KeyError, TypeError, AttributeError):
            # frozen_json's Corrupt and Unsupported are ValueError and TypeError.
            return NONE, "the compiler process ended without an answer"

    def _printed(self) -> str:
        from runner.kernel.bcc import without_noise

        return without_noise(_pread_all(self._stderr).decode("utf-8", "replace"))

    def close(self) -> None:
        """End the child, done or not, reap it, and drop its files."""
        self._end_child()
        for name in ("_source", "_stderr"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def _end_child(self) -> None:
        for name in ("_to_child", "_from_child"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            _, self.status = os.waitpid(self.pid, 0)
            self.pid = -1


def fork() -> Optional[Compiler]:
    """A compiler child, or None if none can be made or it would not help (the compile
    then runs in-process). It helps only with a second CPU to run on: on one, the child's
    import of BCC and the parent's only take turns (measured on one CPU: 316 ms to ready
    with the child, 274 ms with the in-process compile)."""
    if len(os.sched_getaffinity(0)) < 2:
        return None
    try:
        return Compiler()
    except OSError:
        return None


def _killed(status: Optional[int]) -> bool:
    return status is not None and os.WIFSIGNALED(status) \
        and os.WTERMSIG(status) == signal.SIGKILL


def _crashed(status: Optional[int]) -> bool:
    from runner.kernel.exit_notice import CRASHES

    return status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) in CRASHES


def _ended(status: Optional[int]) -> str:
    if status is not None and os.WIFSIGNALED(status):
        return f"was killed by signal {os.WTERMSIG(status)}"
    if status is not None and os.WIFEXITED(status):
        return f"exited with status {os.WEXITSTATUS(status)}"
    return "ended"


def _child(parent: int, ready_fd: int, reply_fd: int, source_fd: int, stderr_fd: int) -> None:
    status = 0
    try:
        os.dup2(stderr_fd, 2)  # the parent reads it if this process dies without an answer
        # A crash here is the parent's to report (CRASHED): no Python traceback of the
        # child's, inherited from a parent with PYTHONFAULTHANDLER (or pytest's).
        faulthandler.disable()
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        ct.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            return
        reply = _compile(ready_fd, source_fd)
        _write_all(reply_fd, json.dumps(reply).encode())
    except BaseException as e:  # the answer is "none" (the parent compiles) and the child ends
        status = 1
        with contextlib.suppress(BaseException):
            _write_all(reply_fd, json.dumps({NONE: f"the compiler process failed: {e!r}"})
                       .encode())
    finally:
        os._exit(status)


def _compile(ready_fd: int, source_fd: int) -> dict:
    from runner.kernel import kallsyms_view, object_cache
    from runner.kernel.bcc import import_bcc, quiet_bpf_class

    bcc = import_bcc()  # while the parent checks and renders
    if not _read_all(ready_fd, lambda: False):  # the parent closed without sending
        return {NONE: "nothing sent"}
    source = _pread_all(source_fd)
    kallsyms_view.enter_view()  # this whole process: it is single-threaded
    try:
        bpf = quiet_bpf_class(bcc)(text=source)
    except Exception as e:  # BCC raises bare Exception for every failure
        return {ERROR: str(e)}  # what clang printed is in the parent's file
    obj = object_cache.capture(bcc, bpf)
    if obj is None:
        return {NONE: "a program the compiled-program cache cannot hold"}
    return {OBJECT: _codec()[0].dumps(obj).decode()}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int, should_stop: Callable[[], bool]) -> Optional[bytes]:
    """Everything until the writer closes, or None as soon as `should_stop()` is true. The
    poll wakes every _POLL_MS: a signal handler only records a stop (runtime/signals.py),
    and a read that blocked would go back to waiting after it."""
    chunks: List[bytes] = []
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while True:
        if should_stop():
            return None
        if not poller.poll(_POLL_MS):
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _pread_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 20, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
