"""Map state and named values:

    - let: {start: {lookup: {map: starts, key: tid}}}         # absent: the probe stops here
    - let: {n: {lookup: {map: counts, key: pid}, default: 0}}
    - let: {delta: "ktime - start"}
    - store: {map: starts, key: tid, value: ktime}
    - delete: {map: starts, key: tid}

A `let` name is a C local of the function, visible to the actions after it in the same
list (and the lists nested in those); a struct looked up is copied, its fields read as
`name.field`. The lookup's NULL check is generated here, never left to the spec.
"""

from __future__ import annotations

from typing import Any, Dict

from runner.check import resolve, stacks
from runner.check.actions.base import ActionKind
from runner.check.actions.update import _key
from runner.check.arith import Typed
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.check.values import assign, assigns, parse_value, scalar_value
from runner.kinds.builtins import BUILTINS
from runner.kinds.maps import MAP_KINDS
from runner.model import expr as e
from runner.model.spec import Action, Delete, Let, Map, MapKey, Store
from runner.model.types import SCALARS, TypeRef
from runner.spec.loader import PathKey

_RESERVED = {"args", "params", "task", "startswith", *resolve.TASK_ALIASES, *SCALARS}


def table(ck: Checker, path: PathKey, name: str, what: str) -> Map:
    m = ck.maps.get(name)
    if m is None or not MAP_KINDS.lookup(m.kind).is_table:
        ck.not_a(path, name, "hash or array map")
        raise Skip
    if what == "delete" and MAP_KINDS.lookup(m.kind).family != "hash":
        ck.err(path, f"delete needs a hash map; the entries of '{name}' ({m.kind}) "
               "always exist", "store 0 instead")
        raise Skip
    return m


def map_key(ck: Checker, path: PathKey, m: Map, raw: Any, scope: ActionScope) -> MapKey:
    key_assigns, key_value = _key(ck, path, m, raw, scope)
    return MapKey(key_assigns, key_value)


class LetKind(ActionKind):
    name = "let"
    node = Let

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Action:
        (name, raw), = a["let"].items()  # the schema allows one name per let
        return self._one(ck, (*path, "let", name), name, raw, scope, origin)

    def _one(self, ck: Checker, path: PathKey, name: str, raw: Any, scope: ActionScope,
             origin: str) -> Let:
        if name in scope.locals or name in BUILTINS or name in _RESERVED:
            ck.err(path, f"'{name}' is already a name here", "choose another name", key=True)
            raise Skip
        try:
            if isinstance(raw, dict) and "lookup" in raw:
                let = _lookup(ck, path, name, raw, scope, origin)
            else:
                let = _computed(ck, path, name, raw, scope, origin)
        except Skip:
            # Reported: the name still exists, so its uses are not unknown names.
            scope.locals[name] = resolve.UNKNOWN
            raise
        _declare(ck, scope, let)
        return let


def _computed(ck: Checker, path: PathKey, name: str, raw: Any, scope: ActionScope,
              origin: str) -> Let:
    if isinstance(raw, int) and not isinstance(raw, bool):
        v = Typed(e.Const(raw), "s64" if raw < 2**63 else "u64")
    elif isinstance(raw, str):
        v = parse_value(ck, path, raw, scope)
    else:
        ck.err(path, "let takes a number, a value written as text, or a lookup")
        raise Skip
    if not v.is_int:
        ck.err(path, f"'{raw}' is not a number: let names numbers and looked-up values",
               _straight_into(v))
        raise Skip
    assert v.scalar is not None
    return Let(origin, name, TypeRef(v.scalar), v.node)  # type: ignore[arg-type]


def _straight_into(v: Typed) -> str:
    """Where a value let does not name goes instead."""
    if v.stack is not None:
        return f"a stack goes straight into an aggregation's key field declared {v.stack}"
    if v.array is not None:
        return "arrays go straight into an array field"
    return "strings go straight into a char[N] field"


def _lookup(ck: Checker, path: PathKey, name: str, raw: Dict[str, Any],
            scope: ActionScope, origin: str) -> Let:
    lk = raw["lookup"]
    m = table(ck, (*path, "lookup", "map"), lk["map"], "lookup")
    key = map_key(ck, (*path, "lookup", "key"), m, lk["key"], scope)
    assert m.value is not None
    if m.value.count is not None and not m.value.is_struct:
        ck.err((*path, "lookup", "map"), f"let can look up a scalar or a struct value; "
               f"'{m.name}' holds {m.value}")
        raise Skip
    default = None
    if "default" in raw:
        if m.value.is_struct or m.value.scalar is None:
            ck.err((*path, "default"), "a struct value has no default: leave `default` "
                   "out, and an absent entry stops the probe")
            raise Skip
        default = scalar_value(ck, (*path, "default"), raw["default"], m.value.scalar, scope)
    return Let(origin, name, m.value, None, m, key, default)


def _declare(ck: Checker, scope: ActionScope, let: Let) -> None:
    """Make the name (and a struct's fields) visible to the actions after it."""
    if not let.type.is_struct:
        scope.locals[let.name] = Typed(e.Local(let.name), let.type.base)
        return
    for f in ck.structs[let.type.base].layout.fields:
        key = f"{let.name}.{f.name}"
        if f.type.is_stack:  # an id that only fills an aggregation's key field alike
            scope.locals[key] = Typed(e.Local(let.name, f.name), None, stack=f.type)
        elif f.type.is_string and f.type.count:
            src = e.LocalChars(let.name, f.name, f.type.count)
            scope.locals[key] = Typed(src, None, src)
        elif f.type.count is None and not f.type.is_struct:
            scope.locals[key] = Typed(e.Local(let.name, f.name), f.type.base)
        elif not f.type.is_struct and f.type.count:
            scope.locals[key] = Typed(e.LocalArray(let.name, f.name, f.type.base,
                                                   f.type.count), None)


class StoreKind(ActionKind):
    name = "store"
    node = Store

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Action:
        s = a["store"]
        here = (*path, "store")
        m = table(ck, (*here, "map"), s["map"], "store")
        key = map_key(ck, (*here, "key"), m, s["key"], scope)
        assert m.value is not None
        vpath = (*here, "value")
        if m.value.is_struct:
            if not isinstance(s["value"], dict) or "literal" in s["value"]:
                ck.err(vpath, f"map '{m.name}' holds a struct ({m.value.base}): give its "
                       "fields as a mapping")
                raise Skip
            struct = ck.structs[m.value.base]
            done = stacks.record_pid(ck, vpath, struct,
                                     assigns(ck, vpath, struct, s["value"], scope), scope)
            return Store(origin, m, key, done, None,
                         ck.drop(m.name, MAP_KINDS.lookup(m.kind).full_reason))
        if m.value.count is not None:
            ck.err((*here, "map"), f"store needs a scalar or struct value; '{m.name}' holds "
                   f"{m.value}")
            raise Skip
        one = assign(ck, vpath, "value", m.value, s["value"], scope)
        return Store(origin, m, key, (), one.value,  # type: ignore[arg-type]
                     ck.drop(m.name, MAP_KINDS.lookup(m.kind).full_reason))


class DeleteKind(ActionKind):
    name = "delete"
    node = Delete

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Action:
        d = a["delete"]
        here = (*path, "delete")
        m = table(ck, (*here, "map"), d["map"], "delete")
        return Delete(origin, m, map_key(ck, (*here, "key"), m, d["key"], scope))


LET = LetKind()
STORE = StoreKind()
DELETE = DeleteKind()
