"""Built-in values a spec can use, their types, and where they are available.

Most built-ins are BPF helper calls that work in any program. `syscall_nr` and
`arg0`..`arg5` depend on the hook's context (a kprobe on the syscall function
sees the wrapper's pt_regs, a syscall tracepoint has its own record, the raw
sys_enter tracepoint has pt_regs in args[0] and the number in args[1]); the
prologue of each generated function computes them for its own context, so the
action code is the same whatever hook was attached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, FrozenSet, Optional, Tuple

from runner.kinds.registry import Registry

# Contexts: the shape of `ctx` in a generated function.
SYSCALL_KPROBE = "syscall_kprobe"  # kprobe on __x64_sys_NAME: ctx is the wrapper's pt_regs
SYSCALL_TP = "syscall_tracepoint"  # syscalls:sys_enter_NAME or raw_syscalls:sys_enter
SYSCALL_RAW = "syscall_raw"  # raw tracepoint sys_enter
KPROBE = "kprobe"  # kprobe or uprobe on a function: ctx is its pt_regs
KRETPROBE = "kretprobe"
TRACEPOINT = "tracepoint"
RAW_TRACEPOINT = "raw_tracepoint"
FENTRY = "fentry"  # BPF trampoline: ctx is the function's arguments as u64s
PERF_EVENT = "perf_event"  # a perf event's sample: ctx is struct bpf_perf_event_data
# A syscall's exit: kretprobe on its function (ctx: its pt_regs), syscalls:sys_exit_NAME
# or raw_syscalls:sys_exit (a record), raw sys_exit (args[0]: user pt_regs, args[1]: ret).
SYSCALL_EXIT_KRETPROBE = "syscall_exit_kretprobe"
SYSCALL_EXIT_TP = "syscall_exit_tracepoint"
SYSCALL_EXIT_RAW = "syscall_exit_raw"

SYSCALL_CONTEXTS = frozenset({SYSCALL_KPROBE, SYSCALL_TP, SYSCALL_RAW})
SYSCALL_EXIT_CONTEXTS = frozenset({SYSCALL_EXIT_KRETPROBE, SYSCALL_EXIT_TP, SYSCALL_EXIT_RAW})


@dataclass(frozen=True)
class Builtin:
    name: str
    type: str  # a runner/model/types.py SCALARS key, or "char[16]" for comm
    c: str  # C expression, valid once the prologue has run
    contexts: FrozenSet[str]  # where it is available; empty means everywhere
    doc: str
    # A runner/kinds/decoders name: the value is a number in the kernel, shown decoded
    # where ebpf-run formats it itself (a print's message).
    decoder: Optional[str] = None


_ANY: FrozenSet[str] = frozenset()
# The syscall's number is in the record or the user's registers at raw sys_exit and the
# syscalls:sys_exit_* tracepoints; a kretprobe on one syscall's function has lost it, and
# is given that syscall's number as a constant (check/probes.py).
_NR_CTX = SYSCALL_CONTEXTS | SYSCALL_EXIT_CONTEXTS
_ARGS_CTX = SYSCALL_CONTEXTS | {KPROBE, FENTRY}

# The registry of built-ins: the checker, codegen and the docs table all read this one.
BUILTINS: Registry[Builtin] = Registry("built-in")
for _b in (
    Builtin("pid", "u32", "(u32)(er_pid_tgid >> 32)", _ANY,
            "process ID (the kernel's tgid), as user space sees it"),
    Builtin("tgid", "u32", "(u32)(er_pid_tgid >> 32)", _ANY,
            "same as pid"),
    Builtin("tid", "u32", "(u32)er_pid_tgid", _ANY, "thread ID"),
    Builtin("uid", "u32", "(u32)er_uid_gid", _ANY, "real user ID"),
    Builtin("gid", "u32", "(u32)(er_uid_gid >> 32)", _ANY, "real group ID"),
    Builtin("ktime", "u64", "bpf_ktime_get_ns()", _ANY, "monotonic time in ns"),
    Builtin("cpu", "u32", "bpf_get_smp_processor_id()", _ANY, "current CPU"),
    Builtin("cgroup", "u64", "bpf_get_current_cgroup_id()", _ANY,
            "the current task's cgroup v2 id (the inode number of its directory)"),
    Builtin("comm", "char[16]", "", _ANY,
            "the current task's name (at syscall entry: the caller's)"),
    Builtin("syscall_nr", "s64", "er_syscall_nr", _NR_CTX,
            "the system call's number (at its entry or exit)"),
    Builtin("syscall_name", "s64", "er_syscall_nr", _NR_CTX,
            "the system call's number, printed as its name (decoder `syscall`)",
            decoder="syscall"),
    # Each of these contexts' prologue computes er_retval (from pt_regs or the record).
    Builtin("retval", "s64", "er_retval", frozenset({KRETPROBE}) | SYSCALL_EXIT_CONTEXTS,
            "the function's return value; at a syscall's exit (also `args.ret`) its "
            "result: a value, or a negative errno"),
    *(
        Builtin(f"arg{i}", "u64", f"er_arg{i}", _ARGS_CTX,
                f"argument {i} of the syscall or probed function")
        for i in range(6)
    ),
):
    BUILTINS.register(_b.name, _b)

# Helpers whose one result serves several built-ins: a function that uses any of them calls
# the helper once, at entry, into er_<key> (bpf_get_current_<key>()), rather than once per use:
# helper calls are opaque to clang, so it cannot merge them itself.
HELPER_LOCALS: Dict[str, FrozenSet[str]] = {
    "pid_tgid": frozenset({"pid", "tgid", "tid"}),
    "uid_gid": frozenset({"uid", "gid"}),
}

# Built-ins the prologue's er_syscall_nr serves.
NEEDS_NR = frozenset({"syscall_nr", "syscall_name"})

# Registers holding syscall arguments in the user pt_regs, and the syscall number.
SYSCALL_REGS: Dict[str, Tuple[str, Tuple[str, ...]]] = {
    "x86_64": ("orig_ax", ("di", "si", "dx", "r10", "r8", "r9")),
    "aarch64": ("syscallno", tuple(f"regs[{i}]" for i in range(6))),
}


def available(name: str, context: str) -> bool:
    b = BUILTINS[name]
    return not b.contexts or context in b.contexts
