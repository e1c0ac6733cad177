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

A child that cannot help (a program the cache cannot hold, a child that died or could not
be forked) leaves the parent compiling in-process, as before. The child ignores the
signals that stop a run: the parent decides, and kills it with SIGKILL if it is not done;
if the parent dies, the kernel kills it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import json
import os
import signal
from typing import Any, Optional, Tuple

# Imported where used: this module is imported before the fork, where every millisecond
# delays the compile; the rest is imported by the child, or by the parent while it waits.

_PR_SET_PDEATHSIG = 1
# What the child answers: one JSON object with one of these keys.
OBJECT, ERROR, NONE = "object", "error", "none"


def _codec() -> Any:
    from runner.kernel.object_cache import CompiledObject
    from runner.support.frozen_json import Codec

    return Codec([CompiledObject]), CompiledObject


class Compiler:
    """A forked child waiting for one C source to compile."""

    def __init__(self) -> None:
        to_child, self._to_child = os.pipe()
        self._from_child, from_child = os.pipe()
        parent = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(self._to_child)
            os.close(self._from_child)
            _child(parent, to_child, from_child)
        os.close(to_child)
        os.close(from_child)

    def send(self, c_source: str) -> bool:
        """Give the child the C to compile. False, and the child ended, if what it
        compiled could not come back as instructions (a program needing BCC's BTF:
        object_cache.py): the caller then compiles it itself."""
        from runner.kernel.object_cache import needs_module

        if needs_module(c_source):
            self.close()
            return False
        fd, self._to_child = self._to_child, -1
        try:
            _write_all(fd, c_source.encode())
        except OSError:
            pass  # a dead child: receive() says so
        finally:
            os.close(fd)
        return True

    def receive(self) -> Tuple[str, Any]:
        """(OBJECT, CompiledObject), (ERROR, (BCC's message, what clang printed)) or
        (NONE, why); the child is gone afterwards."""
        try:
            data = _read_all(self._from_child)
        finally:
            self.close()
        codec, compiled_object = _codec()
        try:
            reply = json.loads(data)
            if OBJECT in reply:
                return OBJECT, codec.loads(reply[OBJECT].encode(), compiled_object)
            if ERROR in reply:
                return ERROR, (str(reply[ERROR]), str(reply["stderr"]))
            return NONE, str(reply.get(NONE))
        except (ValueError, KeyError, TypeError, AttributeError):
            # frozen_json's Corrupt and Unsupported are ValueError and TypeError.
            return NONE, "the compiler process ended without an answer"

    def close(self) -> None:
        """End the child, done or not, and reap it."""
        for name in ("_to_child", "_from_child"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)
        if self.pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
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


def _child(parent: int, source_fd: int, reply_fd: int) -> None:
    status = 0
    try:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(s, signal.SIG_IGN)
        ct.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            return
        reply = _compile(source_fd)
        _write_all(reply_fd, json.dumps(reply).encode())
    except BaseException:  # whatever happens, the answer is "none" and the child ends
        status = 1
    finally:
        os._exit(status)


def _compile(source_fd: int) -> dict:
    from runner.kernel import kallsyms_view, object_cache
    from runner.kernel.bcc import CapturedStderr, import_bcc, quiet_bpf_class

    bcc = import_bcc()  # while the parent checks and renders
    source = _read_all(source_fd)
    if not source:  # the parent closed without sending: nothing to compile
        return {NONE: "nothing sent"}
    kallsyms_view.enter_view()  # this whole process: it is single-threaded
    with CapturedStderr() as err:
        try:
            bpf = quiet_bpf_class(bcc)(text=source)
        except Exception as e:  # BCC raises bare Exception for every failure
            failure: Optional[Exception] = e
        else:
            failure = None
    if failure is not None:
        return {ERROR: str(failure), "stderr": err.text}
    obj = object_cache.capture(bcc, bpf)
    if obj is None:
        return {NONE: "a program the compiled-program cache cannot hold"}
    return {OBJECT: _codec()[0].dumps(obj).decode()}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)
