"""`count: {map, key}` and `add: {map, key, value}`: atomically add to a table's entry."""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from runner.check.actions.base import ActionKind
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.check.values import assign, assigns, scalar_value
from runner.kinds.maps import MAP_KINDS
from runner.model.expr import Cast, Const, Value
from runner.model.spec import Assign, Map, Update
from runner.spec.loader import PathKey


class UpdateKind(ActionKind):
    node = Update

    def __init__(self, name: str):
        self.name = name  # "count" adds one, "add" adds its value

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Update:
        u = a[self.name]
        here = (*path, self.name)
        m = ck.maps.get(u["map"])
        if m is None or not MAP_KINDS.lookup(m.kind).is_table:
            ck.not_a((*here, "map"), u["map"], "hash or array map")
            raise Skip
        assert m.key is not None and m.value is not None
        vt = m.value.scalar
        if m.value.count is not None or vt is None or vt.size < 4 or m.value.is_string:
            ck.err((*here, "map"), f"{self.name} needs a map whose value is u32/u64/s32/s64; "
                   f"'{m.name}' holds {m.value}")
            raise Skip
        amount = Const(1, wide=False) if self.name == "count" else scalar_value(
            ck, (*here, "value"), u["value"], vt, scope)
        if amount == Const(0):
            # LLVM turns an atomic add of 0 into an atomic load, which BPF has not: a 32-bit
            # one makes it exit. Adding nothing is no work anyway.
            ck.err((*here, "value"), "adding 0 changes nothing", "leave the action out")
            raise Skip
        key_assigns, key_expr = _key(ck, (*here, "key"), m, u["key"], scope)
        kind = MAP_KINDS.lookup(m.kind)
        return Update(origin, m, key_assigns, key_expr, amount,
                      ck.drop(m.name, kind.full_reason))


def _key(ck: Checker, path: PathKey, m: Map, raw: Any,
         scope: ActionScope) -> Tuple[Tuple[Assign, ...], Optional[Value]]:
    """(field assignments for a struct key, or the value of a scalar key)."""
    assert m.key is not None
    if m.key.is_struct:
        if not isinstance(raw, dict) or "literal" in raw:
            ck.err(path, f"map '{m.name}' has a struct key ({m.key.base}): "
                   "give its fields as a mapping")
            raise Skip
        return assigns(ck, path, ck.structs[m.key.base], raw, scope), None
    if isinstance(raw, dict) and "literal" not in raw:
        ck.err(path, f"map '{m.name}' has a {m.key} key, not a struct")
        raise Skip
    a = assign(ck, path, "key", m.key, raw, scope)
    if a.how != "expr":
        return (a,), None
    assert isinstance(a.value, (Const, Cast))
    return (), a.value


COUNT = UpdateKind("count")
ADD = UpdateKind("add")
