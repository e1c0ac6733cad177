"""`emit: {to: BUFFER, set: {field: value}}`: send a struct to a perf or ring buffer."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from runner.check import stacks
from runner.check.actions.base import ActionKind
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.check.values import assigns, fills_every_byte
from runner.kinds.maps import MAP_KINDS, buffer_names
from runner.model.spec import Assign, Emit, Map, Struct
from runner.spec.loader import PathKey


class EmitKind(ActionKind):
    name = "emit"
    node = Emit

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Emit:
        e = a["emit"]
        here = (*path, "emit")
        m = ck.maps.get(e["to"])
        if m is None or not MAP_KINDS.lookup(m.kind).is_buffer:
            ck.not_a((*here, "to"), e["to"], buffer_names())
            raise Skip
        assert m.value is not None
        struct = ck.structs.get(m.value.base)
        if struct is None:
            raise Skip
        where = (*here, "set") if "set" in e else here
        done = assigns(ck, (*here, "set"), struct, e.get("set", {}), scope)
        stacks.unset(ck, where, struct, e.get("set", {}))
        return record(ck, origin, m, struct, stacks.record_pid(ck, where, struct, done, scope))


def record(ck: Checker, origin: str, m: Map, struct: Struct,
           done: Tuple[Assign, ...]) -> Emit:
    """An Emit of `struct` into buffer `m`; print actions send their messages this way too."""
    # Counted in the kernel for perf buffers too: the kernel reports a perf loss only
    # when a later sample fits, so after a final burst its own count arrives late or never.
    return Emit(origin, m, struct, done, ck.drop(m.name, "buffer full"),
                zero_fill=not fills_every_byte(struct, done))


KIND = EmitKind()
