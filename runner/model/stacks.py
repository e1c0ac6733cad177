"""Stack values in the model: the stack-trace maps a spec's kstack and ustack fields use
(runner/check/stacks.py makes them; runner/runtime/stacks.py reads them)."""

from __future__ import annotations

from dataclasses import dataclass

STACK_PID = "er_stack_pid"  # the hidden key field of an aggregation with a ustack
# A failed capture: the map is full (-ENOMEM), or another stack holds its hash slot (-EEXIST).
STACK_LOSS = "stack not captured: stack map full or hash collision"


@dataclass(frozen=True)
class StackMap:
    """A stack-trace map (BPF_MAP_TYPE_STACK_TRACE) holding stacks of at most `depth`
    frames, shared by every kstack and ustack field of that depth; ids index it."""

    name: str
    value: str  # the C struct of one stack: `depth` u64 addresses
    depth: int
    entries: int
