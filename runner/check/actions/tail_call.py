"""`tail_call: {map: PROG_ARRAY, index: VALUE}`: jump to a program; carry on if the slot is
empty (the miss is counted)."""

from __future__ import annotations

from typing import Any, Dict, Iterable

from runner.check.actions.base import ActionKind
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.check.values import scalar_value
from runner.kinds.maps import MAP_KINDS, PROG_ARRAY
from runner.model.spec import TailCall
from runner.model.types import SCALARS
from runner.spec.loader import PathKey


class TailCallKind(ActionKind):
    name = "tail_call"
    node = TailCall

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> TailCall:
        tc = a["tail_call"]
        here = (*path, "tail_call")
        m = ck.maps.get(tc["map"])
        if m is None or MAP_KINDS.lookup(m.kind).family != PROG_ARRAY:
            ck.not_a((*here, "map"), tc["map"], "prog_array")
            raise Skip
        # Any integer will do: an index past the table falls through, which is counted.
        idx = scalar_value(ck, (*here, "index"), tc["index"], SCALARS["s64"], scope)
        return TailCall(origin, m, idx, ck.drop(m.name, FELL_THROUGH, is_loss=False))

    def jumps(self, a: Dict[str, Any]) -> Iterable[str]:
        return (a["tail_call"]["map"],)


# bpf_tail_call returns in three cases the program cannot tell apart (it cannot read a
# prog_array): the slot is empty, the index is past the table, or the chain already made the
# kernel's most tail calls (33). None loses a record: the probe goes on with its next action.
FELL_THROUGH = "tail calls fell through (an empty slot, or the chain limit of 33)"

KIND = TailCallKind()
