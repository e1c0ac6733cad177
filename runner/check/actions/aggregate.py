"""`aggregate: {map, key, value | elapsed}`: record one value in an aggregation (see
runner/check/aggregations.py). A count records an occurrence and takes no value.

`elapsed: {map, key}` is the value ktime - map[key] for a hash map of u64 timestamps
(filled at the matching entry with `store: {map, key, value: ktime}`), converted from ns
to the aggregation's unit; the entry is then
deleted, and nothing is recorded when it is missing (an exit whose entry came before the
run started).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from runner.check import stacks
from runner.check.actions.base import ActionKind
from runner.check.actions.state import map_key
from runner.check.checker import Checker, Skip
from runner.check.resolve import use_builtin
from runner.check.scope import ActionScope
from runner.check.values import assigns, scalar_value
from runner.kinds.maps import MAP_KINDS
from runner.kinds.units import NS_PER
from runner.model.expr import BuiltinRef, Cast, Value
from runner.model.spec import Aggregate, Aggregation, Assign, Elapsed
from runner.model.stacks import STACK_PID
from runner.model.types import SCALARS
from runner.spec.loader import PathKey


class AggregateKind(ActionKind):
    name = "aggregate"
    node = Aggregate

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Aggregate:
        u = a[self.name]
        here = (*path, self.name)
        agg = ck.aggregations.get(u["map"])
        if agg is None:
            if u["map"] not in ck.data.get("aggregations", {}):
                ck.unknown((*here, "map"), "aggregation", u["map"], ck.aggregations)
            raise Skip
        key_assigns = _key(ck, (*here, "key"), agg, u.get("key", {}), scope)
        value, elapsed = _value(ck, here, agg, u, scope)
        divide = NS_PER.get(agg.unit or "ns", 1) if elapsed is not None else 1
        return Aggregate(origin, agg, key_assigns, value, elapsed, divide,
                         ck.drop(agg.name, "map full"))


def _key(ck: Checker, path: PathKey, agg: Aggregation, raw: Dict[str, Any],
         scope: ActionScope) -> Tuple[Assign, ...]:
    wanted = [k.name for k in agg.keys]
    missing = [n for n in wanted if n not in raw]
    if missing:
        ck.err(path if raw else path[:-1],
               f"aggregation '{agg.name}' is keyed by {', '.join(wanted)}: "
               f"give {', '.join(missing)}")
        raise Skip
    if not agg.keys:
        return ()
    struct = next(s for s in ck.msg_structs if s.name == f"er_agg_{agg.name}")
    extra = [n for n in raw if n not in wanted]
    if extra:
        ck.err((*path, extra[0]), f"'{extra[0]}' is not a key field of '{agg.name}' "
               f"(keyed by {', '.join(wanted)})", key=True)
        raise Skip
    done = assigns(ck, path, struct, raw, scope)
    if agg.stack_pid:  # the process whose addresses the ustack holds (hidden key field)
        ustack = next(k.name for k in agg.keys if k.type.base == "ustack")
        stored = stacks.copied_pid(raw[ustack], scope.locals)
        if stored is not None:  # taken earlier and stored with its pid (a map value)
            done += (Assign(STACK_PID, "expr", stored, 0),)
        else:
            use_builtin(ck, path, "pid", scope)
            done += (Assign(STACK_PID, "stack_pid", Cast("u32", BuiltinRef("pid")), 0),)
            ck.stack_pids = True
    return done


def _value(ck: Checker, here: PathKey, agg: Aggregation, u: Dict[str, Any],
           scope: ActionScope) -> Tuple[Optional[Value], Optional[Elapsed]]:
    given = [k for k in ("value", "elapsed") if k in u]
    if agg.kind == "count":
        if given:
            ck.err((*here, given[0]), "a count records occurrences: it takes no value",
                   key=True)
            raise Skip
        return None, None
    if len(given) != 1:
        ck.err(here, f"a {agg.kind} needs exactly one of 'value' or 'elapsed'")
        raise Skip
    if given[0] == "value":
        return scalar_value(ck, (*here, "value"), u["value"], SCALARS["s64"], scope), None
    e = u["elapsed"]
    epath = (*here, "elapsed")
    if agg.unit not in (None, *NS_PER):
        ck.err(epath, f"elapsed is a time; aggregation '{agg.name}' is in {agg.unit}")
        raise Skip
    if e["map"] in ck.aggregations:
        ck.err((*epath, "map"), f"'{e['map']}' is an aggregation, not a hash map of u64 "
               "timestamps")
        raise Skip
    m = ck.maps.get(e["map"])
    if m is None or MAP_KINDS.lookup(m.kind).family != "hash" or str(m.value) != "u64" \
            or MAP_KINDS.lookup(m.kind).per_cpu:
        ck.not_a((*epath, "map"), e["map"], "hash map of u64 timestamps")
        raise Skip
    # Any key a hash map takes: a scalar (tid), char[N] or a struct ({pid, fd}), built
    # as a delete builds it.
    return None, Elapsed(m, map_key(ck, (*epath, "key"), m, e["key"], scope))


KIND = AggregateKind()
