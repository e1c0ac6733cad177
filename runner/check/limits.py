"""Limits of the kernel and of BCC's compiler that a spec can reach, checked before loading:
each is named with the spec element that reaches it, instead of a bare errno or an LLVM
that exits without a word.

Numbers measured on this project's machines (BCC 0.26 / LLVM 14, kernels 6.1 and 6.18)
or read from the kernel's source, as each constant says.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Iterator, Tuple

from runner.check import stack
from runner.check.checker import Checker
from runner.check.structs import type_size
from runner.kinds.maps import HASH, MAP_KINDS
from runner.model.spec import Candidate, Function, Map, Probe, Program
from runner.model.types import TypeRef

# A hash key is built on the function's 512-byte BPF stack (the insert needs a copy there).
# Measured: a 488-byte key next to a 300-byte perf record loads, 496 makes LLVM exit; the
# margin leaves room for the prologue's locals.
MAX_STACK_KEY = 448

# The kernel's MAX_USED_MAPS (include/linux/bpf_verifier.h): maps one program may use.
MAX_USED_MAPS = 64

# BPF_TRACE_MAX_PROGS (kernel/trace/bpf_trace.c): programs attached to one tracepoint,
# shared by everyone on the machine; a spec alone must stay under it.
MAX_TRACEPOINT_PROGS = 64

# What ebpf-run lets one map take (keys and values, for every entry and, per-CPU, for
# every CPU): beyond it the kernel answers ENOMEM or takes the machine's memory.
MAX_MAP_BYTES = 1 << 30

# sizeof(struct htab_elem) on 64-bit kernels (kernel/bpf/hashtab.c), before key and value.
HASH_ELEMENT = 48

# ebpf-run's own maps a function may use besides the spec's: loss counters, ring wakeups,
# the message ring or the trace_pipe tag.
OWN_MAPS = 3


def maps(ck: Checker) -> None:
    """Per-map limits: what a per-CPU value may be, key size, memory."""
    for name, m in ck.maps.items():
        kind = MAP_KINDS.lookup(m.kind)
        path = ("maps", name)
        if kind.per_cpu and m.value is not None and (m.value.is_struct
                                                     or m.value.count is not None):
            ck.err((*path, "value"), f"a {kind.name} map's value must be an integer, not "
                   f"{m.value}: ebpf-run adds up the values of every CPU",
                   "use a hash or array map for records")
        if kind.family == HASH and m.key is not None and _size(ck, m.key) > MAX_STACK_KEY:
            ck.err((*path, "key"), f"key {m.key} is {_size(ck, m.key)} bytes: a hash key is "
                   f"built on the 512-byte BPF stack (limit {MAX_STACK_KEY})")
        if kind.is_table and m.key is not None and m.value is not None:
            # An array stores no keys; a hash stores each key beside its value, in an
            # element with a header of its own.
            keys = (HASH_ELEMENT + _round8(_size(ck, m.key))) if kind.family == HASH else 0
            entry = keys + _round8(_size(ck, m.value))
            if entry * m.max_entries > MAX_MAP_BYTES:
                ck.err(path, f"map '{name}' would take {entry * m.max_entries >> 20} MiB "
                       f"({m.max_entries} entries of {entry} bytes); ebpf-run allows "
                       f"{MAX_MAP_BYTES >> 20} MiB per map", "lower max_entries", key=True)


def programs(ck: Checker, probes: Tuple[Probe, ...], progs: Tuple[Program, ...]) -> None:
    """Limits that count across functions: maps per program, programs per tracepoint."""
    checked = set()
    for owner, fn in [(("probes", p.name), c.function) for p in probes for c in p.candidates] \
            + [(("programs", p.name), f) for p in progs for f in p.functions]:
        if owner not in checked:  # each variant of a probe has the same actions
            checked.add(owner)
            stack.check_function(ck, owner, fn.actions)
        used = {m.name for m in _maps_in(fn.actions)}
        if len(used) + OWN_MAPS > MAX_USED_MAPS:
            ck.err(owner, f"{owner[1]} uses {len(used)} maps; one BPF program may use "
                   f"{MAX_USED_MAPS} (the kernel's MAX_USED_MAPS), {OWN_MAPS} of them "
                   "ebpf-run's own", "split the work between probes", key=True)
    _tracepoints(ck, probes)


def _tracepoints(ck: Checker, probes: Tuple[Probe, ...]) -> None:
    count: Counter = Counter()
    for p in probes:
        for target in {t for c in p.candidates if c.kind == "tracepoint" for t in c.targets}:
            count[target] += 1
            if count[target] > MAX_TRACEPOINT_PROGS:
                ck.err(("probes", p.name, "attach"), f"probe '{p.name}' would be program "
                       f"{count[target]} on tracepoint {target}; the kernel attaches at most "
                       f"{MAX_TRACEPOINT_PROGS} to one tracepoint (BPF_TRACE_MAX_PROGS)")


def _maps_in(node: Any) -> Iterator[Map]:
    """Every map an action tree refers to, whatever the action kinds."""
    if isinstance(node, Map):
        yield node
    elif isinstance(node, (tuple, list)):
        for x in node:
            yield from _maps_in(x)
    elif dataclasses.is_dataclass(node) and not isinstance(node, (Function, Candidate)):
        for f in dataclasses.fields(node):
            yield from _maps_in(getattr(node, f.name))


def _size(ck: Checker, t: TypeRef) -> int:
    return type_size(ck, t)


def _round8(n: int) -> int:
    return (n + 7) & ~7

