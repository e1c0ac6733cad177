"""Stack values: the stack-trace maps the spec's kstack/ustack fields need (one per
depth), the capture that fills such a field (`key: {k: kstack}`), and the copy of a kstack
stored in a map value into an aggregation's key field (`key: {k: s.stack}`).

A stack map is preallocated by the kernel: entries x depth x 8 bytes (16384 x 127 frames
is 16 MiB). 16384 is BCC profile's default (--stack-storage-size): room for the distinct
stacks of a busy machine over a profile of tens of seconds; a spec sets another size with
`stacks: {entries: N}`. A full map, or a stack hashing to a slot another stack holds, is a
failed capture: counted as a loss, and the sample is kept with a `[lost stack]` frame.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Tuple

from runner.check.arith import Typed
from runner.check.checker import Checker, Skip
from runner.check.resolve import use_builtin
from runner.check.scope import ActionScope
from runner.model.expr import BuiltinRef, Cast
from runner.model.spec import Assign, Map, StackCapture, StackPids, Struct
from runner.model.stacks import STACK_LOSS, STACK_PID, StackMap
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


def capture(ck: Checker, path: PathKey, member: str, t: TypeRef, raw: Any,
            locals_: Mapping[str, Typed]) -> Assign:
    """A stack field is filled by the built-in of its own kind, or by a stack field of its
    kind and depth read back from a map (an id is an index into its depth's map only)."""
    read = locals_.get(raw) if isinstance(raw, str) else None
    if read is not None and read.stack is not None:
        return _copy(ck, path, member, t, raw, read)
    if raw != t.base:
        ck.err(path, f"field '{member}' is {t}: it takes the value {t.base}, not {raw!r}")
        raise Skip
    return Assign(member, "stack", StackCapture(stack_map(ck, t.depth), t.base == "ustack",
                                                ck.drop(CHANNEL, STACK_LOSS)), 0)


def _copy(ck: Checker, path: PathKey, member: str, t: TypeRef, raw: str,
          read: Typed) -> Assign:
    if read.stack != t:
        ck.err(path, f"field '{member}' is {t} but '{raw}' is {read.stack}: a stack id "
               f"indexes the stack map of its own kind and depth",
               f"declare both {t}, or both {read.stack}")
        raise Skip
    stack_map(ck, t.depth)  # the map its frames are read from, also when nothing fills it here
    return Assign(member, "expr", read.node, 0)  # type: ignore[arg-type]


def misused(ck: Checker, path: PathKey, name: str, target: str) -> None:
    """Report a stack value where it cannot go (a number, text, a condition)."""
    ck.err(path, f"'{name}' is a stack ({STACKS[name]} frames), not {target}",
           f"a stack is a value of an aggregation's key field declared {name} or {name}[N]")
    raise Skip


def record_pid(ck: Checker, path: PathKey, struct: Struct, done: Tuple[Assign, ...],
               scope: ActionScope) -> Tuple[Assign, ...]:
    """The assignments of a record (an event, a stored map value) with the hidden pid a
    struct holding a ustack carries (runner/check/structs.py): the current process's, sent
    once to ebpf-run so that its mappings are read while it lives."""
    if not any(m.name == STACK_PID for m in struct.layout.fields):
        return done
    use_builtin(ck, path, "pid", scope)
    ck.stack_pids = True
    return (*done, Assign(STACK_PID, "stack_pid", Cast("u32", BuiltinRef("pid")), 0))


def unset(ck: Checker, path: PathKey, struct: Struct, given: Mapping[str, Any]) -> None:
    """An event's stack field left out would hold 0, which is a real stack's id: refused."""
    missing = [f.name for f in struct.layout.fields if f.type.is_stack and f.name not in given]
    if missing:
        f = next(f for f in struct.layout.fields if f.name == missing[0])
        ck.err(path, f"field '{f.name}' of struct '{struct.name}' is a {f.type}: set it "
               f"(e.g. {f.name}: {f.type.base})", "an unset stack field would hold the id "
               "of another stack")


def copied_pid(raw: Any, locals_: Mapping[str, Typed]) -> Optional[Any]:
    """Where a ustack copied from a map value (`b.stack`) has its pid: that value's hidden
    pid field (`b.er_stack_pid`); None for a ustack taken here."""
    read = locals_.get(raw) if isinstance(raw, str) else None
    if read is None or read.stack is None or "." not in raw:
        return None
    pid = locals_.get(f"{raw.rsplit('.', 1)[0]}.{STACK_PID}")
    return pid.node if pid is not None else None
