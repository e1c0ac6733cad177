"""Stack values: the stack-trace maps the spec's kstack/ustack key fields need (one per
depth), and the capture that fills such a field (`key: {k: kstack}`).

A stack map is preallocated by the kernel: entries x depth x 8 bytes (16384 x 127 frames
is 16 MiB). 16384 is BCC profile's default (--stack-storage-size): room for the distinct
stacks of a busy machine over a profile of tens of seconds; a spec sets another size with
`stacks: {entries: N}`. A full map, or a stack hashing to a slot another stack holds, is a
failed capture: counted as a loss, and the sample is kept with a `[lost stack]` frame.
"""

from __future__ import annotations

from typing import Any

from runner.check.checker import Checker, Skip
from runner.model.spec import Assign, Map, StackCapture, StackPids
from runner.model.stacks import STACK_LOSS, StackMap
from runner.model.types import STACKS, TypeRef
from runner.spec.loader import PathKey

DEFAULT_ENTRIES = 16384
CHANNEL = "stacks"
# One u32 per process that has a ustack taken, once (16-byte records): 8 pages hold 2048
# new processes between two reads of ebpf-run's loop.
# Past `seen` pids sent, a new process is read when a dump meets it.
PIDS = StackPids(Map("er_stack_pids", "ringbuf", None, None, 0, 8,
                     "the pids whose user stacks were taken, each once"), seen=65536)


def stack_map(ck: Checker, depth: int) -> StackMap:
    """The stack map for stacks of `depth` frames, made on first use."""
    found = ck.stack_maps.get(depth)
    if found is None:
        entries = int(ck.data.get("stacks", {}).get("entries", DEFAULT_ENTRIES))
        found = ck.stack_maps[depth] = StackMap(f"er_stacks_{depth}", f"er_stack_{depth}",
                                                depth, entries)
    return found


def capture(ck: Checker, path: PathKey, member: str, t: TypeRef, raw: Any) -> Assign:
    """A stack field is filled by the built-in of its own kind, and by nothing else."""
    if raw != t.base:
        ck.err(path, f"field '{member}' is {t}: it takes the value {t.base}, not {raw!r}")
        raise Skip
    return Assign(member, "stack", StackCapture(stack_map(ck, t.depth), t.base == "ustack",
                                                ck.drop(CHANNEL, STACK_LOSS)), 0)


def misused(ck: Checker, path: PathKey, name: str, target: str) -> None:
    """Report a stack value where it cannot go (a number, text, a condition)."""
    ck.err(path, f"'{name}' is a stack ({STACKS[name]} frames), not {target}",
           f"a stack is a value of an aggregation's key field declared {name} or {name}[N]")
    raise Skip
