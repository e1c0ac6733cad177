"""class Kernel: one loaded spec, from compile to release.

It compiles the rendered C, fills tail-call tables, attaches each probe by the first
attach option that works (saying why the earlier ones did not), detaches, and releases
everything on close. The channels to user space are its `channels`
(runner/kernel/channels.py); maps and loss counters are read with runner/kernel/maps.py
from its `bpf`. Callers see project exceptions only.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, List, Optional, Tuple

from runner.errors import KernelError
from runner.kernel import tail_calls
from runner.kernel.attach import Attached, AttachHook, Detach, hook_for
from runner.kernel.bcc import CapturedStderr, failure_detail, reason
from runner.kernel.channels import Channels
from runner.kernel.load import Loading, begin
from runner.kernel.maps import Maps
from runner.kernel.perf_link import close_in_parallel, hand_off
from runner.kernel.tail_calls import StopRequested
from runner.model.spec import Candidate, Function, Probe, Spec
from runner.support.fallbacks import FAST, Fallbacks

MEMBARRIER_CMD_GLOBAL = 1
_SYS_MEMBARRIER = {"x86_64": 324, "aarch64": 283}
_libc = ct.CDLL(None, use_errno=True)


def _never() -> bool:
    return False


@dataclass
class Kernel:
    """A loaded spec. Use as a context manager: leaving it releases everything."""

    spec: Spec
    c_source: str
    bpf: Any = None
    bcc: Any = None
    _channels: Optional[Channels] = None  # the buffers to user space, once loaded
    _maps: Optional[Maps] = None  # its maps and loss counters, once loaded
    _detaches: List[Tuple[str, Detach]] = field(default_factory=list)
    _leftovers: List[int] = field(default_factory=list)  # bare perf events: close() ends them
    # A load begun early (load.begin), so the compile overlapped the caller's imports.
    loading: Optional[Loading] = None
    fallbacks: Fallbacks = FAST  # the slower paths, when forced by hand

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Load the program; self.bpf stays None if `should_stop()` came true while a
        compiler child was still at work (load.py)."""
        self.loading = self.loading or begin(self.c_source)
        self.bcc = self.loading.bcc
        self.bpf = self.loading.result(should_stop)
        if self.bpf is not None:
            self._channels = Channels(self.bcc, self.bpf, self.fallbacks)
            self._maps = Maps(self.bpf, self.spec.drops)

    @property
    def channels(self) -> Channels:
        if self._channels is None:
            raise KernelError("internal error: the program's channels are asked for before "
                              "its load or after its release")
        return self._channels

    @property
    def maps(self) -> Maps:
        if self._maps is None:
            raise KernelError("internal error: the program's maps are asked for before its "
                              "load or after its release")
        return self._maps

    # -- attach and detach -----------------------------------------------------------------

    def attach(self, probe: Probe, should_stop: Callable[[], bool] = _never) -> Attached:
        """The first option of the probe that attaches; StopRequested if a stop came."""
        skipped: List[Tuple[str, str]] = []
        for cand in probe.candidates:
            hook = hook_for(cand, self.fallbacks)
            if cand.function.filter_nrs and self.fallbacks.syscalls_each:
                skipped.append((cand.describe, "ruled out by EBPF_RUN_SYSCALL_ATTACH=each"))
                continue
            why = next((w for c in _each(cand) if (w := hook.precheck(self.bcc, c))),
                       None) or self._try(probe, cand, hook, should_stop)
            if why is None:
                return Attached(probe.name, cand.describe, tuple(skipped), probe.optional)
            skipped.append((cand.describe, why))
        return Attached(probe.name, None, tuple(skipped), probe.optional)

    def _try(self, probe: Probe, cand: Candidate, hook: AttachHook,
             should_stop: Callable[[], bool]) -> Optional[str]:
        name = cand.function.c_name
        # libbcc and libbpf print their own complaints on fd 2; the reason we give says it.
        ct.set_errno(0)  # what a failure leaves there is libbcc's (bcc.failure_detail)
        done: List[Detach] = []
        with CapturedStderr() as noise:
            try:
                if not hook.loads_itself:
                    self._load_function(cand.function)
                for table in probe.tables:
                    tail_calls.fill(self.bcc, self.bpf, self.spec, table,
                                    cand.function.context, self._load_function, should_stop)
                for each in _each(cand):  # a probe on several syscalls: all or none
                    done.append(hook.attach(self.bcc, self.bpf, each, name.encode()))
            except StopRequested:
                _undo(done)
                self._unload(name)
                raise
            except Exception as e:  # BCC's bare Exceptions: turn them into a reason
                failure: Optional[Exception] = e
            else:
                failure = None
        if failure is None:
            self._detaches.extend((cand.describe, d) for d in done)
            return None
        _undo(done)
        self._unload(name)
        for table in probe.tables:  # the next option must not find it bound to this type
            tail_calls.renew(self.bcc, self.bpf, table)
        why = reason(failure)
        detail = failure_detail(noise.text, why)
        return f"{why} [{detail}]" if detail else why

    def _load_function(self, fn: Function) -> Any:
        prog_type = getattr(self.bcc.BPF, fn.prog_type)
        return self.bpf.load_func(fn.c_name.encode(), prog_type)

    def _unload(self, c_name: str) -> None:
        fn = self.bpf.funcs.pop(c_name.encode(), None)
        if fn is not None:
            os.close(fn.fd)

    def detach_all(self) -> None:
        """Detach every probe, then wait until no program still runs: from here on the
        buffers and counters only hold what was produced before, so a drain ends."""
        if not self._detaches:
            return
        failed = self._detach_each()
        _wait_for_running_programs()
        if failed:
            raise KernelError("could not detach: " + "; ".join(failed))

    def _detach_each(self) -> List[str]:
        """Undo every attach: ours side by side, then BCC's latest first (its detaches
        share its state); a failure does not stop the others. What that leaves bare (perf
        events with no program) waits in _leftovers for close()."""
        detaches, self._detaches = self._detaches[::-1], []
        failed = []
        ours = [(m, d) for m, d in detaches if d.parallel]
        for (method, _), e in zip(ours, close_in_parallel([d.undo for _, d in ours])):
            if e is not None:
                failed.append(f"{method}: {reason(e)}")
        for method, detach in detaches:
            if not detach.parallel:
                with CapturedStderr():
                    try:
                        detach.undo()
                    except Exception as e:  # BCC's bare Exceptions
                        failed.append(f"{method}: {reason(e)}")
        self._leftovers.extend(d.leftover for _, d in detaches if d.leftover is not None)
        return failed

    # -- cleanup ---------------------------------------------------------------------------

    def close(self) -> None:
        if self.loading is not None:  # begun, never used: a stop came first
            self.loading.discard()
        if self.bpf is not None:
            bpf, self.bpf = self.bpf, None
            try:
                self._detach_each()  # some fds are ours, not BCC's (see attach.py)
                if self._channels is not None:
                    self._channels.close()
                bpf.cleanup()
            finally:
                self._channels, self._maps = None, None
                leftovers, self._leftovers = self._leftovers, []
                hand_off(leftovers)


def _each(cand: Candidate) -> List[Candidate]:
    """The candidate as attached: once per target (Candidate.more), the same function."""
    return [cand] if not cand.more else [replace(cand, target=t, more=())
                                         for t in cand.targets]


def _undo(done: List[Detach]) -> None:
    """The attaches of a candidate that failed on a later target."""
    for d in reversed(done):
        with contextlib.suppress(Exception):  # BCC's bare Exceptions: the failure is told
            d.undo()
    hand_off([d.leftover for d in done if d.leftover is not None])


def _wait_for_running_programs() -> None:
    """A program that started before its detach may still be writing a record. RCU covers
    every BPF program run from a tracepoint, probe or trampoline, so once a grace period
    has passed (membarrier's global command waits for one) none is still running."""
    nr = _SYS_MEMBARRIER.get(os.uname().machine)
    if nr is None or _libc.syscall(nr, MEMBARRIER_CMD_GLOBAL, 0) != 0:
        time.sleep(0.05)  # no membarrier: programs run for microseconds
