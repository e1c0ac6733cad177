"""A syscall exit's candidates, named for this kernel and architecture.

runner/kinds/attach.py plans `syscall_exit: NAME` with the syscall's spec name; here the
kretprobe gets the architecture's function (__x64_sys_openat) and the tracepoint the
kernel's entry name (`stat` exits through syscalls:sys_exit_newstat), both from the
tracepoint catalog's syscall table.
"""

from __future__ import annotations

from dataclasses import replace

from runner.check.checker import Checker
from runner.check.fields import catalog
from runner.kinds import builtins as bi
from runner.kinds.attach import Planned


def resolve(ck: Checker, p: Planned) -> Planned:
    if p.context == bi.SYSCALL_EXIT_KRETPROBE and p.syscall:
        sc = catalog(ck.arch).syscall(p.syscall)
        if sc is not None and sc.entry is not None:
            return replace(p, target=sc.kprobe_function(ck.arch) or p.target)
    prefix = "syscalls:sys_exit_"
    if p.context == bi.SYSCALL_EXIT_TP and p.target.startswith(prefix):
        sc = catalog(ck.arch).syscall(p.target[len(prefix):])
        if sc is not None and sc.exit_tracepoint:
            return replace(p, target=sc.exit_tracepoint)
    return p
