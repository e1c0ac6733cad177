"""How much of the 512-byte BPF stack a generated function keeps in buffers at once, worked
out from the model before anything is compiled. LLVM's BPF backend has no error to give
back when a function's frame outgrows 512 bytes: it prints "Looks like the BPF stack limit
of 512 bytes is exceeded" and calls exit(1). So what would not fit is refused here,
located at the action that reaches the limit.

The count follows what the templates put on the stack and how long it lives there:
- a `let` that looks up a struct keeps its copy (`er_v_NAME`) to the end of its list;
- every other buffer lives in the block of one action and is free again after it (LLVM
  gives sibling blocks the same stack slots): a map key (a let's key too: it is built in a
  block of its own), a stored value, a perf record, an aggregation's keys, and the buffer
  a string comparison reads into (one byte longer than the literal, and its NUL).
Ring buffer records are reserved in the ring, not on the stack.

Measured with BCC 0.26 / LLVM 14 on this project's 6.18 machine (the limit is LLVM's, so
Debian's 6.1 with the same LLVM behaves alike): a key and a value of 248 bytes each (496
in all) load, of 256 bytes each do not; a let's struct copy of 248 bytes and a key of 248
load, of 256 each do not. The limit keeps the margin the key limit always had, for the scalars the
compiler spills beside the buffers.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Iterator, Optional, Sequence, Tuple

from runner.check.checker import Checker
from runner.check.structs import type_size
from runner.kinds.maps import MAP_KINDS
from runner.model import expr as e
from runner.model.spec import (
    Action,
    Aggregate,
    Choose,
    Delete,
    Emit,
    If,
    Let,
    Map,
    Print,
    Store,
    Update,
)
from runner.model.types import TypeRef

# Bytes of buffers a function may keep on the stack at once (see the module's docstring).
MAX_STACK_BUFFERS = 448


@dataclasses.dataclass
class _Peak:
    """The largest count met so far in a function, and the action that reached it."""

    bytes: int = 0
    origin: str = ""

    def see(self, held: int, origin: str) -> None:
        if held > self.bytes:
            self.bytes, self.origin = held, origin


def check_function(ck: Checker, owner: Tuple[str, str], actions: Sequence[Action]) -> None:
    """Refuse a function whose buffers cannot all fit on the BPF stack, at the action where
    the count first passes the limit."""
    peak = _Peak()
    _list(ck, actions, 0, peak)
    if peak.bytes <= MAX_STACK_BUFFERS:
        return
    ck.err(_path(peak.origin) or owner,
           f"{owner[0][:-1]} '{owner[1]}' would keep {peak.bytes} bytes of buffers on the "
           f"512-byte BPF stack here (keys, values, records, struct copies and string reads; limit "
           f"{MAX_STACK_BUFFERS})",
           "use smaller keys or char[N] fields, or split the work between probes")


def _list(ck: Checker, actions: Sequence[Action], held: int, peak: _Peak) -> None:
    """Walk one action list; `held` is what the enclosing lists' lets keep."""
    for a in actions:
        origin = str(getattr(a, "origin", ""))
        if isinstance(a, If):
            peak.see(held + _strings(a.condition), origin)
            _list(ck, a.then, held, peak)
            _list(ck, a.otherwise, held, peak)
        elif isinstance(a, Choose):
            for case in a.cases:
                _list(ck, case.actions, held, peak)
        elif isinstance(a, Let):
            peak.see(held + _transient(ck, a), origin)
            if a.map is not None and a.type.is_struct:
                held += type_size(ck, a.type)  # the copy lives to the end of the list
                peak.see(held, origin)
        else:
            peak.see(held + _transient(ck, a), origin)


def _transient(ck: Checker, a: Action) -> int:
    """The bytes one action's own block holds."""
    if isinstance(a, Let):
        return _key(ck, a.map) if a.map is not None else _strings(a.value)
    if isinstance(a, (Delete, Update)):
        return _key(ck, a.map) + _strings(a)
    if isinstance(a, Store):
        value = a.map.value
        return _key(ck, a.map) + (type_size(ck, value) if value is not None else 8)
    if isinstance(a, Aggregate):
        timing = _key(ck, a.elapsed.map) if a.elapsed is not None else 0
        # The aggregation's key struct is ebpf-run's own: its fields, 8-aligned to be safe,
        # and the bucket.
        key = sum(-(-type_size(ck, k.type) // 8) * 8 for k in a.agg.keys) + 8
        return key + timing + _strings(a)
    if isinstance(a, (Emit, Print)):
        return _record(a if isinstance(a, Emit) else a.emit)
    return _strings(a)


def _key(ck: Checker, m: Optional[Map]) -> int:
    if m is None:
        return 0
    return type_size(ck, m.key if m.key is not None else TypeRef("u64"))


def _record(emit: Optional[Emit]) -> int:
    if emit is None or MAP_KINDS.lookup(emit.map.kind).ring:
        return 0  # reserved in the ring buffer
    return emit.struct.layout.size


def _strings(node: Any) -> int:
    """The buffers the string comparisons in `node` read into (all at once, to be safe)."""
    return sum(c.buffer_size for c in _compares(node))


def _compares(node: Any) -> Iterator[e.StrCompare]:
    if isinstance(node, e.StrCompare):
        yield node
    elif isinstance(node, (tuple, list)):
        for x in node:
            yield from _compares(x)
    elif dataclasses.is_dataclass(node) and not isinstance(node, type):
        for f in dataclasses.fields(node):
            yield from _compares(getattr(node, f.name))


_STEP = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _path(origin: str) -> Optional[Tuple[Any, ...]]:
    """The spec path an origin comment names: 'probes.p.do[1] (line 9)' ->
    ('probes', 'p', 'do', 1)."""
    text = origin.split(" (line ", 1)[0]
    if not text:
        return None
    return tuple(int(m.group(1)) if m.group(1) else m.group(2) for m in _STEP.finditer(text))
