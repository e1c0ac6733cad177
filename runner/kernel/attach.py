"""Attaching a probe: its options in order, each through the hook of its kind.

HOOKS maps every `Candidate.kind` the checker makes to three things: a precheck that
finds why the option cannot work here without loading anything, the attach itself, and
the matching detach. A kind without a hook is an internal error, never an option that
silently attaches nothing. Runs stop by detaching every probe first (so nothing more is
produced) and only then draining the buffers; the detaches recorded here make that
possible before the BPF object is torn down.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Tuple

from runner.errors import KernelError
from runner.kernel import environment as env
from runner.kernel import perf_link
from runner.kinds import perf_events
from runner.kinds.registry import Registry, UnknownKind
from runner.model.spec import Candidate
from runner.support.fallbacks import FAST, Fallbacks


@dataclass(frozen=True)
class Detach:
    """How to undo one attach."""

    undo: Callable[[], None]
    # Touches only descriptors of ours, no BCC state: may run beside the other detaches
    # (perf_link.close_in_parallel), which is what makes a stop of many probes fast.
    parallel: bool = False
    # A perf event left bare by `undo` (no program, disabled): closed last, perf_link.hand_off.
    leftover: Optional[int] = None


@dataclass(frozen=True)
class Attached:
    probe: str
    method: Optional[str]  # None when nothing attached
    skipped: Tuple[Tuple[str, str], ...]  # (method, reason) of the options tried first
    optional: bool


@dataclass(frozen=True)
class AttachHook:
    # A reason the option cannot work here, found without loading anything; or None.
    precheck: Callable[[Any, Candidate], Optional[str]]
    # Attach the loaded function (bytes name) by this option; returns how to undo it.
    attach: Callable[[Any, Any, Candidate, bytes], Detach]
    # fentry programs are loaded by BCC's attach_kfunc itself, with their BTF target.
    loads_itself: bool = False


def hook_for(cand: Candidate, fallbacks: Fallbacks = FAST) -> AttachHook:
    if cand.kind == "tracepoint" and fallbacks.tracepoint_bcc:
        return BCC_TRACEPOINT  # forced by hand (runner/support/fallbacks.py)
    try:
        return HOOKS.lookup(cand.kind)
    except UnknownKind as e:
        raise KernelError(f"{e} ({cand.describe})") from None


def _no_precheck(_bcc: Any, _cand: Candidate) -> Optional[str]:
    return None


def _kprobe_precheck(_bcc: Any, _cand: Candidate) -> Optional[str]:
    return None if env.kprobes_available() else "kernel has no kprobes (CONFIG_KPROBES is off)"


def _kprobe(_bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    if cand.syscall:  # the kernel's name for the syscall's entry differs by architecture
        event = bpf.get_syscall_fnname(cand.syscall.encode())
        if bpf.ksymname(event) == -1:
            raise KernelError(f"no kernel symbol {event.decode()}")
    else:
        event = cand.target.encode()
    bpf.attach_kprobe(event=event, fn_name=name)
    return Detach(lambda: bpf.detach_kprobe(event=event))


def _kretprobe(_bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    event = cand.target.encode()
    bpf.attach_kretprobe(event=event, fn_name=name)
    return Detach(lambda: bpf.detach_kretprobe(event=event))


def _tracepoint_precheck(_bcc: Any, cand: Candidate) -> Optional[str]:
    if env.tracepoint_exists(cand.target):
        return None
    return f"no tracepoint {cand.target} in {env.TRACEFS}/events"


def _tracepoint(bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    # Through a link where the kernel has them: a stop detaches every probe at once
    # (perf_link.py says why BCC's way takes 80 ms per probe, one at a time).
    fn = bpf.load_func(name, bcc.BPF.TRACEPOINT)  # already loaded: BCC's cached entry
    linked = perf_link.attach_tracepoint(fn.fd, cand.target)
    if linked is None:
        return _tracepoint_by_bcc(bcc, bpf, cand, name)
    link, perf_fd = linked

    def undo() -> None:
        os.close(link)
        perf_link.disable(perf_fd)
    return Detach(undo, parallel=True, leftover=perf_fd)


def _tracepoint_by_bcc(bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    tp = cand.target.encode()
    bpf.attach_tracepoint(tp=tp, fn_name=name)
    # BCC keeps one fd per tracepoint name: a second probe on the same tracepoint would
    # overwrite the first one's, which then could never be detached. Keep it here.
    fd = bpf.tracepoint_fds.pop(tp)
    # One C call on a descriptor of ours (ctypes releases the GIL): may run in parallel.
    return Detach(lambda: _check(bcc.libbcc.lib.bpf_close_perf_event_fd(fd), cand),
                  parallel=True)


def _raw_tracepoint(_bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    tp = cand.target.encode()
    bpf.attach_raw_tracepoint(tp=tp, fn_name=name)
    # As for tracepoints; BCC would also refuse a second program on the same raw tracepoint.
    fd = bpf.raw_tracepoint_fds.pop(tp)
    return Detach(lambda: os.close(fd), parallel=True)


def _uprobe_precheck(_bcc: Any, cand: Candidate) -> Optional[str]:
    path = cand.target.rsplit(":", 1)[0]
    return None if os.path.exists(path) else f"{path} does not exist"


def _uprobe(_bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    path, sym = cand.target.encode().rsplit(b":", 1)
    bpf.attach_uprobe(name=path, sym=sym, fn_name=name)
    return Detach(lambda: bpf.detach_uprobe(name=path, sym=sym))


def _uretprobe(_bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    path, sym = cand.target.encode().rsplit(b":", 1)
    bpf.attach_uretprobe(name=path, sym=sym, fn_name=name)
    return Detach(lambda: bpf.detach_uretprobe(name=path, sym=sym))


def _fentry_precheck(bcc: Any, _cand: Candidate) -> Optional[str]:
    if not env.kernel_btf():
        return "no kernel BTF (/sys/kernel/btf/vmlinux)"
    if not bcc.BPF.support_kfunc():
        return "BCC reports no BPF trampoline support on this kernel"
    return None


def _fentry(_bcc: Any, bpf: Any, cand: Candidate, _name: bytes) -> Detach:
    target = cand.target.encode()
    bpf.attach_kfunc(fn_name=target)
    return Detach(lambda: bpf.detach_kfunc(fn_name=target))


def _perf_precheck(_bcc: Any, cand: Candidate) -> Optional[str]:
    ev = perf_events.parse(*cand.target.split(":", 1))
    if ev.type == perf_events.TYPE_HARDWARE and not env.hardware_counters():
        return (f"hardware counter '{ev.event}' not on this machine (no CPU performance "
                "monitoring unit in /sys/bus/event_source/devices)")
    return None


def _perf_event(bcc: Any, bpf: Any, cand: Candidate, name: bytes) -> Detach:
    ev = perf_events.parse(*cand.target.split(":", 1))
    bpf.attach_perf_event(ev_type=ev.type, ev_config=ev.config, fn_name=name,
                          sample_period=ev.period, sample_freq=ev.freq, pid=ev.pid, cpu=ev.cpu)
    # BCC keeps one perf event per CPU under (type, config): a second probe on the same
    # event would overwrite the first one's. Take them here and close them ourselves.
    fds = list(bpf.open_perf_events.pop((ev.type, ev.config)).values())

    def detach() -> None:
        failed = [fd for fd in fds if bcc.libbcc.lib.bpf_close_perf_event_fd(fd) < 0]
        if failed:
            raise KernelError(f"could not detach {cand.describe}")
    # Descriptors of ours only, closed by one C call each (ctypes releases the GIL).
    return Detach(detach, parallel=True)


def _check(rc: int, cand: Candidate) -> None:
    if rc < 0:
        raise KernelError(f"could not detach {cand.describe}")


HOOKS: Registry[AttachHook] = Registry("attach hook")  # keyed by CANDIDATE_KINDS' names
HOOKS.register("kprobe", AttachHook(_kprobe_precheck, _kprobe))
HOOKS.register("kretprobe", AttachHook(_kprobe_precheck, _kretprobe))
HOOKS.register("tracepoint", AttachHook(_tracepoint_precheck, _tracepoint))
BCC_TRACEPOINT = AttachHook(_tracepoint_precheck, _tracepoint_by_bcc)  # no link, as BCC does
HOOKS.register("raw_tracepoint", AttachHook(_no_precheck, _raw_tracepoint))
HOOKS.register("uprobe", AttachHook(_uprobe_precheck, _uprobe))
HOOKS.register("uretprobe", AttachHook(_uprobe_precheck, _uretprobe))
HOOKS.register("fentry", AttachHook(_fentry_precheck, _fentry, loads_itself=True))
HOOKS.register("perf_event", AttachHook(_perf_precheck, _perf_event))
