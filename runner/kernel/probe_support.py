"""What this kernel can attach, for `ebpf-run doctor`: a do-nothing program attached by
each method and detached at once."""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, Optional, Tuple

from runner.kernel.bcc import CapturedStderr, import_bcc, reason
from runner.kinds.attach import CANDIDATE_KINDS
from runner.kinds.registry import Registry

_PROBE_C = """
#include <uapi/linux/bpf_perf_event.h>
int er_probe_kprobe(struct pt_regs *ctx) { return 0; }
int er_probe_tracepoint(void *ctx) { return 0; }
int er_probe_raw(struct bpf_raw_tracepoint_args *ctx) { return 0; }
int er_probe_perf(struct bpf_perf_event_data *ctx) { return 0; }
"""
_FENTRY_C = "KFUNC_PROBE(%s) { return 0; }\n"


def try_attach_kinds() -> Dict[str, Tuple[bool, str]]:
    """Attach a do-nothing program by each method the doctor tries (the attach kinds with
    a `doctor` row in runner/kinds/attach.py), detach at once; report what happened."""
    bcc = import_bcc()
    results: Dict[str, Tuple[bool, str]] = {}
    with CapturedStderr():
        b = bcc.BPF(text=_PROBE_C.encode())
    try:
        fn = b.get_syscall_fnname(b"getpid").decode()
        for kind in CANDIDATE_KINDS.values():
            if kind.doctor is not None and kind.name != "fentry":
                results[kind.name] = _attempt(TRIES.lookup(kind.name), b, fn)
    finally:
        b.cleanup()
    results["fentry"] = _try_fentry(bcc)
    return results


# kind -> (attach a do-nothing program with BPF object b, syscall function fn; what it is)
Try = Callable[[Any, str], str]


def _kprobe(b: Any, fn: str) -> str:
    b.attach_kprobe(event=fn, fn_name=b"er_probe_kprobe")
    return fn


def _tracepoint(b: Any, fn: str) -> str:
    b.attach_tracepoint(tp=b"syscalls:sys_enter_getpid", fn_name=b"er_probe_tracepoint")
    return "syscalls:sys_enter_getpid"


def _raw_tracepoint(b: Any, fn: str) -> str:
    b.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"er_probe_raw")
    return "sys_enter"


def _perf_event(b: Any, fn: str) -> str:
    # A 1 Hz CPU clock on CPU 0: the cheapest sampling event there is.
    b.attach_perf_event(ev_type=1, ev_config=0, fn_name=b"er_probe_perf", sample_freq=1,
                        cpu=0)
    return "a 1 Hz CPU clock on CPU 0"


TRIES: Registry[Try] = Registry("doctor attach try")
TRIES.register("kprobe", _kprobe)
TRIES.register("tracepoint", _tracepoint)
TRIES.register("raw_tracepoint", _raw_tracepoint)
TRIES.register("perf_event", _perf_event)
# fentry: its own BPF object (_try_fentry), since BCC attaches it while compiling.


def _attempt(attempt: Try, b: Any, fn: str) -> Tuple[bool, str]:
    try:
        with CapturedStderr():  # libbcc prints its own complaint; we report it
            return True, f"attached to {attempt(b, fn)}"
    except Exception as e:  # BCC's bare Exception
        return False, reason(e)


def _try_fentry(bcc: Any) -> Tuple[bool, str]:
    # BCC attaches KFUNC_PROBE programs while constructing BPF(), so this gets its own object.
    if not bcc.BPF.support_kfunc():
        return False, "BCC or the kernel reports no BPF trampoline support"
    b = None
    try:
        with CapturedStderr() as err:
            try:
                b = bcc.BPF(text=(_FENTRY_C % "do_nanosleep").encode())
            except Exception as e:  # BCC's bare Exception
                failure: Optional[Exception] = e
            else:
                failure = None
        if failure is not None:
            if "super-user" in str(failure) and os.geteuid() == 0:
                # BCC words every EPERM as a privilege problem; as root it is the kernel.
                return False, "the kernel refused to load a trampoline program (EPERM) to root"
            return False, reason(failure) + (f": {err.text.strip()}" if err.text.strip() else "")
        return True, "attached to do_nanosleep"
    finally:
        if b is not None:
            b.cleanup()


def bcc_info() -> Tuple[str, str]:
    """(version, file) of the bcc module that imports."""
    bcc = import_bcc()
    version = getattr(getattr(bcc, "version", None), "__version__", "unknown")
    return str(version), str(getattr(bcc, "__file__", "?"))
