"""Attach options, the candidates they expand to, and the contexts those run in.

Three tables, read by the checker (runner/check/probes.py) and codegen:
- CONTEXTS: the shape of `ctx` in a generated function, its C signature and BCC program type;
- CANDIDATE_KINDS: how BCC attaches a program, keyed by exactly the names of the model's
  `Candidate.kind`; runner/kernel keys its attach hooks by the same names;
- OPTIONS: what a spec may write under `attach:` (the schema's attach_target keys), each
  expanding to the candidates tried in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Tuple

from runner.kinds import builtins as bi
from runner.kinds.registry import Registry


@dataclass(frozen=True)
class Context:
    name: str
    signature: str  # C parameter list of a generated function
    prog_type: str  # BCC program type name (BPF.<prog_type>)
    # Whether the C reads struct pt_regs, whose header costs clang about 18 ms to parse:
    # "always", "if_used" (only to reach syscall_nr or the arguments), or "never".
    pt_regs: str = "never"
    header: Optional[str] = None  # a kernel header the signature's struct needs

    @property
    def prologue(self) -> str:
        """The template that computes this context's syscall_nr and argN at entry."""
        return f"prologue_{self.name}.c.j2"


CONTEXTS: Registry[Context] = Registry("context")
for _c in (
    Context(bi.SYSCALL_KPROBE, "struct pt_regs *ctx", "KPROBE", "always"),
    Context(bi.KPROBE, "struct pt_regs *ctx", "KPROBE", "always"),
    Context(bi.KRETPROBE, "struct pt_regs *ctx", "KPROBE", "always"),
    Context(bi.SYSCALL_TP, "void *ctx", "TRACEPOINT"),
    Context(bi.TRACEPOINT, "void *ctx", "TRACEPOINT"),
    Context(bi.SYSCALL_RAW, "struct bpf_raw_tracepoint_args *ctx", "RAW_TRACEPOINT", "if_used"),
    Context(bi.RAW_TRACEPOINT, "struct bpf_raw_tracepoint_args *ctx", "RAW_TRACEPOINT"),
    # KFUNC_PROBE(function) declares the function itself: unsigned long long *ctx
    Context(bi.FENTRY, "", "TRACING"),
    Context(bi.SYSCALL_EXIT_KRETPROBE, "struct pt_regs *ctx", "KPROBE", "always"),
    Context(bi.SYSCALL_EXIT_TP, "void *ctx", "TRACEPOINT"),
    Context(bi.SYSCALL_EXIT_RAW, "struct bpf_raw_tracepoint_args *ctx", "RAW_TRACEPOINT",
            "always"),
    Context(bi.PERF_EVENT, "struct bpf_perf_event_data *ctx", "PERF_EVENT",
            header="uapi/linux/bpf_perf_event.h"),
):
    CONTEXTS.register(_c.name, _c)


@dataclass(frozen=True)
class Doctor:
    """How `ebpf-run doctor` reports a kind it tries (runner/kernel/probe_support.py holds
    the do-nothing attach of each)."""

    fix: str  # what a machine without the kind needs
    required: bool  # missing is FAIL (the shipped specs need it), else "no"


@dataclass(frozen=True)
class CandidateKind:
    name: str  # Candidate.kind
    # BCC names the program after its target (kfunc__<function>), not after us: one probe
    # per target, and the generated function takes that name.
    named_by_bcc: bool = False
    doctor: Optional[Doctor] = None  # tried by `ebpf-run doctor`, in this table's order


CANDIDATE_KINDS: Registry[CandidateKind] = Registry("candidate kind")
for _k in (
    CandidateKind("kprobe", doctor=Doctor(
        "a kernel with CONFIG_KPROBES=y; syscall probes fall back to tracepoints", False)),
    CandidateKind("kretprobe"),
    CandidateKind("tracepoint", doctor=Doctor(
        "a kernel with CONFIG_FTRACE_SYSCALLS=y and tracefs mounted", True)),
    CandidateKind("raw_tracepoint", doctor=Doctor(
        "a kernel with BPF raw tracepoints (4.17+)", True)),
    CandidateKind("uprobe"),
    CandidateKind("uretprobe"),
    CandidateKind("fentry", named_by_bcc=True, doctor=Doctor(
        "a kernel allowing BPF trampolines (BTF, 5.5+); use kprobe or tracepoint", False)),
    # profile:, software:, hardware: (runner/kinds/perf_events.py parses the target).
    CandidateKind("perf_event", doctor=Doctor(
        "a kernel with CONFIG_PERF_EVENTS=y (sampling probes: profile, software)", False)),
):
    CANDIDATE_KINDS.register(_k.name, _k)


@dataclass(frozen=True)
class Planned:
    """One candidate as an option plans it, before its function is generated."""

    kind: str  # a CANDIDATE_KINDS name
    target: str  # what BCC attaches to
    syscall: Optional[str]  # the syscall, for the kprobe form of `syscall:`
    context: str  # a CONTEXTS name
    filter_nr: Optional[int]  # raw sys_enter: only this syscall number
    variant: str  # suffix of the generated function's name
    template: str = ""  # Candidate.template: the target before parameters were filled in
    number: Optional[int] = None  # a kretprobe on one syscall's function: its number
    filter_nrs: Tuple[int, ...] = ()  # raw sys_enter/sys_exit of several syscalls: these
    more: Tuple[str, ...] = ()  # Candidate.more: further targets of the same function


# expand(target, syscall number or None, suffix) -> candidates; the suffix tells apart two
# options of one kind in an attach list ("" for a single option).
Expand = Callable[[str, Optional[int], str], Tuple[Planned, ...]]
# expand_many(the kernel's entry names, their numbers or () when one has none, suffix):
# the candidates of a probe on several syscalls.
ExpandMany = Callable[[Tuple[str, ...], Tuple[int, ...], str], Tuple[Planned, ...]]


@dataclass(frozen=True)
class AttachOption:
    name: str  # the key under `attach:`
    expand: Expand
    syscall_target: bool = False  # the target is a syscall name, resolved per architecture
    perf_event: bool = False  # the target names a perf event (runner/kinds/perf_events.py)
    expand_many: Optional[ExpandMany] = None  # a list or glob of syscalls as the target


def _syscall(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
    # Most portable first: the syscall function's kprobe, its tracepoint, raw sys_enter.
    # `target` is the kernel's entry name (newfstat for fstat). Raw sys_enter sees every
    # syscall and keeps this one by number: a syscall no table numbers gets no raw option.
    return (
        Planned("kprobe", target, target, bi.SYSCALL_KPROBE, None, "kprobe"),
        Planned("tracepoint", f"syscalls:sys_enter_{target}", None, bi.SYSCALL_TP, None,
                "tracepoint"),
    ) + ((Planned("raw_tracepoint", "sys_enter", None, bi.SYSCALL_RAW, nr, "raw"),)
         if nr is not None else ())


def _syscall_exit(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
    # The same order at the exit. `target` is the kernel's entry name; the kretprobe's
    # function (__x64_sys_NAME) is found by runner/check/exits.py, and a syscall no
    # table numbers gets no raw option.
    return (
        # At its return the function's argument (the user's registers) is gone: the
        # syscall_nr of the one syscall it serves is a constant.
        Planned("kretprobe", target, target, bi.SYSCALL_EXIT_KRETPROBE, None, "kretprobe",
                number=nr),
        Planned("tracepoint", f"syscalls:sys_exit_{target}", None, bi.SYSCALL_EXIT_TP, None,
                "tracepoint"),
    ) + ((Planned("raw_tracepoint", "sys_exit", None, bi.SYSCALL_EXIT_RAW, nr, "raw"),)
         if nr is not None else ())  # as at the entry: raw sys_exit keeps ours by number


def _many(raw: str, raw_ctx: str, tp_prefix: str, tp_ctx: str) -> ExpandMany:
    # Several syscalls: raw sys_enter (sys_exit) first, ONE attachment whatever their
    # number, keeping theirs by a switch in the kernel; where the kernel has no raw
    # tracepoints, each syscall's tracepoint, all running the one function (their records
    # share a layout). A syscall no table numbers leaves only the tracepoints.
    def expand(entries: Tuple[str, ...], nrs: Tuple[int, ...],
               suffix: str) -> Tuple[Planned, ...]:
        first, *rest = [tp_prefix + e for e in entries]
        return ((Planned("raw_tracepoint", raw, None, raw_ctx, None, "raw" + suffix,
                         filter_nrs=nrs),) if nrs else ()) + (
            Planned("tracepoint", first, None, tp_ctx, None, "tracepoint" + suffix,
                    more=tuple(rest)),)
    return expand


def _simple(kind: str, context: str) -> Expand:
    def expand(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
        return (Planned(kind, target, None, context, None, kind + suffix),)
    return expand


def _tracepoint(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
    # Syscall-entry tracepoints have the syscall record, so syscall_nr and argN work there.
    syscall = target.startswith("syscalls:sys_enter_") or target == "raw_syscalls:sys_enter"
    exit_ = target.startswith("syscalls:sys_exit_") or target == "raw_syscalls:sys_exit"
    ctx = bi.SYSCALL_TP if syscall else bi.SYSCALL_EXIT_TP if exit_ else bi.TRACEPOINT
    return (Planned("tracepoint", target, None, ctx, None, "tracepoint" + suffix),)


def _raw_tracepoint(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
    ctx = {"sys_enter": bi.SYSCALL_RAW, "sys_exit": bi.SYSCALL_EXIT_RAW}.get(
        target, bi.RAW_TRACEPOINT)
    return (Planned("raw_tracepoint", target, None, ctx, None, "raw_tracepoint" + suffix),)


def _perf(option: str) -> Expand:
    # The target stays the spec's text, prefixed by the option, which the kernel stage
    # parses again to attach (runner/kinds/perf_events.py).
    def expand(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
        return (Planned("perf_event", f"{option}:{target}", None, bi.PERF_EVENT, None,
                        option + suffix),)
    return expand


def _fentry(target: str, nr: Optional[int], suffix: str) -> Tuple[Planned, ...]:
    return (Planned("fentry", target, None, bi.FENTRY, None, f"kfunc__{target}"),)


OPTIONS: Registry[AttachOption] = Registry("attach option")
for _o in (
    AttachOption("syscall", _syscall, syscall_target=True, expand_many=_many(
        "sys_enter", bi.SYSCALL_RAW, "syscalls:sys_enter_", bi.SYSCALL_TP)),
    AttachOption("kprobe", _simple("kprobe", bi.KPROBE)),
    AttachOption("kretprobe", _simple("kretprobe", bi.KRETPROBE)),
    AttachOption("tracepoint", _tracepoint),
    AttachOption("raw_tracepoint", _raw_tracepoint),
    AttachOption("fentry", _fentry),
    AttachOption("uprobe", _simple("uprobe", bi.KPROBE)),
    AttachOption("syscall_exit", _syscall_exit, syscall_target=True, expand_many=_many(
        "sys_exit", bi.SYSCALL_EXIT_RAW, "syscalls:sys_exit_", bi.SYSCALL_EXIT_TP)),
    # A uretprobe's pt_regs hold the function's return value, as a kretprobe's do.
    AttachOption("uretprobe", _simple("uretprobe", bi.KRETPROBE)),
    AttachOption("profile", _perf("profile"), perf_event=True),
    AttachOption("software", _perf("software"), perf_event=True),
    AttachOption("hardware", _perf("hardware"), perf_event=True),
):
    OPTIONS.register(_o.name, _o)
