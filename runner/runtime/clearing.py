"""Clearing an aggregation after each dump, done by subtraction (see below); split from
runner/model/aggregates.py, whose types it works on."""

from __future__ import annotations

from typing import Dict, Literal, Union

from runner.model.aggregates import AggregateError, Histogram, Key, ScalarKind, Stats, Value

# ---- clearing after a dump ----------------------------------------------------------
#
# "Clear after each dump" is done without deleting kernel entries where it can be:
# deleting races with updates (an event between the read and the delete is lost) and
# Prometheus needs the cumulative value anyway. A dump shows current - baseline, and the
# dumped snapshot becomes the next baseline. min and max cannot be subtracted: a spec that
# clears them must delete the kernel entries (needs_kernel_clear).


Kind = Union[ScalarKind, Literal["hist", "lhist"]]


def needs_kernel_clear(kind: Kind) -> bool:
    return kind in ("min", "max")


def since(current: Dict[Key, Value], baseline: Dict[Key, Value], kind: Kind) -> Dict[Key, Value]:
    """Per key, what was added since `baseline`; keys with nothing new are left out.
    A count below its baseline means the kernel entry was deleted and created again (an
    eviction, a restart): all of it is new. A sum may go down by itself (negative values)."""
    if needs_kernel_clear(kind):
        raise AggregateError(f"{kind} cannot be cleared by subtraction: delete the kernel entries")
    out: Dict[Key, Value] = {}
    for key, value in current.items():
        delta = _subtract(value, baseline.get(key))
        if kind != "sum" and _went_back(delta):
            delta = value
        if not _is_empty(delta):
            out[key] = delta
    return out


def subtract(value: Value, old: Value) -> Value:
    """value - old: what a key gained (count and sum; a stats' min and max are lost)."""
    return _subtract(value, old)


def plus(values: Dict[Key, Value], more: Dict[Key, Value]) -> Dict[Key, Value]:
    """`values` with `more` added key by key: what an evicted key gained between the read
    of a dump and its deletion, shown in the next dump."""
    out = dict(values)
    for key, value in more.items():
        out[key] = value if key not in out else _add(out[key], value)
    return out


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, Histogram) and isinstance(b, Histogram):
        return Histogram(a.layout, tuple(x + y for x, y in zip(a.counts, b.counts)),
                         None if a.sum is None or b.sum is None else a.sum + b.sum)
    if isinstance(a, Stats) and isinstance(b, Stats):
        lows = [x for x in (a.min, b.min) if x is not None]
        highs = [x for x in (a.max, b.max) if x is not None]
        return Stats(a.count + b.count, a.sum + b.sum, min(lows) if lows else None,
                     max(highs) if highs else None)
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    raise AggregateError(f"cannot add {type(b).__name__} to {type(a).__name__}")


def _went_back(value: Value) -> bool:
    if isinstance(value, Histogram):
        return any(c < 0 for c in value.counts)
    if isinstance(value, Stats):
        return value.count < 0
    return value is not None and value < 0


def _is_empty(value: Value) -> bool:
    if isinstance(value, Histogram):
        return value.total == 0
    if isinstance(value, Stats):
        return value.count == 0
    return value == 0


def _subtract(value: Value, old: Value) -> Value:
    if old is None:
        return value
    if isinstance(value, Histogram) and isinstance(old, Histogram):
        if value.layout != old.layout:
            raise AggregateError("baseline histogram has another layout")
        return Histogram(
            value.layout,
            tuple(a - b for a, b in zip(value.counts, old.counts)),
            None if value.sum is None or old.sum is None else value.sum - old.sum,
        )
    if isinstance(value, Stats) and isinstance(old, Stats):
        # count and sum subtract; min and max over an interval are not recoverable.
        return Stats(value.count - old.count, value.sum - old.sum, None, None)
    if isinstance(value, int) and isinstance(old, int):
        return value - old
    raise AggregateError(f"cannot subtract {type(old).__name__} from {type(value).__name__}")
