"""Detaching many probes at once (runner/kernel/perf_link.py, Kernel._detach_each).

Each tracepoint detach sleeps in the kernel for a grace period; one at a time, 1,000 probes
took 57 s to stop. These tests hold the mechanism to what makes it fast, with stand-ins for
the kernel's descriptors: our own detaches run side by side, BCC's one at a time, and the
perf events they leave bare are closed by a process that outlives nobody's patience.
(tests/kernel/test_stopping.py stops 1,000 real probes; bench/stop_many.py times it.)
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import select
import threading
from types import SimpleNamespace
from typing import List

import pytest

from runner.kernel import perf_link
from runner.kernel.attach import AttachHook, Detach
from runner.kernel.session import Kernel

N = 16


def kernel_with(detaches: List[Detach]) -> Kernel:
    k = Kernel(spec=None, c_source="")  # type: ignore[arg-type]  # only detaches used
    k._detaches = [(f"probe {i}", d) for i, d in enumerate(detaches)]
    return k


def test_our_detaches_run_side_by_side():
    """N detaches that each wait for all N to have started: they end only if they run at
    the same time (one at a time, the first would wait for the barrier's timeout)."""
    barrier = threading.Barrier(N, timeout=30)
    k = kernel_with([Detach(barrier.wait, parallel=True) for _ in range(N)])
    assert k._detach_each() == []
    assert not barrier.broken and k._detaches == []


def test_bccs_detaches_run_one_at_a_time_latest_first_after_ours():
    order: List[str] = []
    running = threading.Lock()

    def bcc(name: str) -> Detach:
        def undo() -> None:
            assert running.acquire(blocking=False), "two of BCC's detaches at once"
            order.append(name)
            running.release()
        return Detach(undo)

    k = kernel_with([bcc("a"), Detach(lambda: order.append("ours"), parallel=True),
                     bcc("b"), bcc("c")])
    assert k._detach_each() == []
    assert order == ["ours", "c", "b", "a"]


def test_a_failed_detach_is_named_and_the_others_still_run():
    done: List[int] = []

    def fails() -> None:
        raise OSError(9, "Bad file descriptor")

    k = kernel_with([Detach(lambda: done.append(1), parallel=True), Detach(fails, parallel=True),
                     Detach(lambda: done.append(2))])
    assert k._detach_each() == ["probe 1: [Errno 9] Bad file descriptor"]
    assert sorted(done) == [1, 2]


def test_leftovers_wait_for_close_and_are_handed_off(monkeypatch):
    handed: List[List[int]] = []
    monkeypatch.setattr("runner.kernel.session.hand_off", lambda fds: handed.append(list(fds)))
    k = kernel_with([Detach(lambda: None, parallel=True, leftover=41),
                     Detach(lambda: None), Detach(lambda: None, parallel=True, leftover=42)])
    k._detach_each()
    assert sorted(k._leftovers) == [41, 42] and handed == []

    class Closed:
        def cleanup(self) -> None:
            pass

    k.bpf = Closed()
    k.close()
    assert [sorted(h) for h in handed] == [[41, 42]] and k._leftovers == []


def test_hand_off_closes_ours_and_a_child_drops_the_last_reference():
    """A pipe's write end stands for a perf event: after hand_off it is closed here, and
    the read end sees end-of-file once the child that inherited it has exited."""
    r, w = os.pipe()
    try:
        perf_link.hand_off([w])
        with pytest.raises(OSError):
            os.fstat(w)
        assert perf_link.HANDED, "no child was started"
        child = perf_link.HANDED.pop()
        assert child.wait(30) == 0
        assert select.select([r], [], [], 30)[0] == [r]
        assert os.read(r, 1) == b""
    finally:
        os.close(r)


def test_close_in_parallel_reports_each_outcome_in_order():
    def boom() -> None:
        raise ValueError("x")

    got = perf_link.close_in_parallel([lambda: None, boom, lambda: None])
    assert [type(e).__name__ if e else None for e in got] == [None, "ValueError", None]


# -- why an attach failed ----------------------------------------------------------------------

def failed_attach(printed: str, message: str, err: int = 0) -> str:
    """The reason Kernel._try gives when an attach prints `printed` on fd 2, leaves `err`
    in libbcc's errno, and raises BCC's bare Exception(message)."""
    def attach(*_args: object) -> Detach:
        os.write(2, printed.encode())
        ct.set_errno(err)
        raise Exception(message)  # what BCC raises

    k = Kernel(spec=None, c_source="")  # type: ignore[arg-type]
    k.bpf = SimpleNamespace(funcs={})
    cand = SimpleNamespace(function=SimpleNamespace(c_name="er_p__kprobe"), describe="kprobe x",
                           more=())
    hook = AttachHook(lambda *_: None, attach, loads_itself=True)
    why = k._try(SimpleNamespace(tables=()), cand, hook, lambda: False)  # type: ignore[arg-type]
    assert why is not None
    return why


def test_an_eperm_attach_says_what_libbcc_printed():
    """BCC's exception for a failed tracepoint or kprobe attach names the program and the
    event, not the errno: what libbcc printed on fd 2 says it, and the reason keeps it."""
    printed = ("some noise\nperf_event_open(/sys/kernel/tracing/events/syscalls/"
               "sys_enter_getppid/id): Operation not permitted\n")
    why = failed_attach(printed, "Failed to attach BPF program b'er_p__tracepoint' to "
                                 "tracepoint b'syscalls:sys_enter_getppid'")
    assert why == ("Failed to attach BPF program b'er_p__tracepoint' to tracepoint "
                   "b'syscalls:sys_enter_getppid' [perf_event_open(/sys/kernel/tracing/"
                   "events/syscalls/sys_enter_getppid/id): Operation not permitted]")
    why = failed_attach(printed, "Failed to attach BPF program b'er_p__kprobe' to kprobe b'x'")
    assert why.endswith("/id): Operation not permitted]"), why


def test_an_attach_failing_silently_gives_the_errno():
    why = failed_attach("", "Failed to attach BPF program b'er_p__kprobe' to kprobe b'x'",
                        errno.EPERM)
    assert why.endswith("[Operation not permitted (EPERM)]"), why


def test_a_reason_that_says_it_all_gets_nothing_added():
    assert failed_attach("", "cannot attach: Operation not permitted", errno.EPERM) == \
        "cannot attach: Operation not permitted"
