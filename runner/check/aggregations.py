"""The aggregations section: per-key count/sum/min/max/avg/stats and histograms, each a
per-CPU map whose layout runner/model/aggregates.py documents.

Each aggregation becomes ordinary model parts, so rendering and reading need nothing new:
an internal key struct `er_agg_<name>` (the key fields, then `bucket` for histograms), the
shared value struct `er_agg_slot` for scalar kinds, and a percpu_hash Map.
"""

from __future__ import annotations

import contextlib
from typing import Any, Dict, Optional, Tuple

from runner.check.checker import Checker, Skip
from runner.check.names import hex_companions_free, name_ok
from runner.check.structs import type_of
from runner.kinds.decoders import Decoders, UnknownDecoder, UnknownEnum
from runner.kinds.maps import DEFAULT_MAX_ENTRIES
from runner.model.spec import AggKey, Aggregation, Map, MetricDecl, Struct
from runner.model.stacks import STACK_PID
from runner.model.types import TypeRef, lay_out
from runner.spec.loader import PathKey

SLOT = "er_agg_slot"
HISTOGRAMS = ("hist", "lhist")
MAX_LHIST_BUCKETS = 1000  # between min and max, as bpftrace's lhist()
S64_MIN, S64_MAX = -(2**63), 2**63 - 1
_DEFAULT_METRIC = {"count": "counter", "sum": "counter", "min": "gauge", "max": "gauge",
                   "avg": "gauge", "hist": "histogram", "lhist": "histogram"}


def check(ck: Checker) -> Dict[str, Aggregation]:
    """Every aggregation, its key struct and map registered with the checker's tables."""
    found: Dict[str, Aggregation] = {}
    for name, raw in ck.data.get("aggregations", {}).items():
        with contextlib.suppress(Skip):
            found[name] = _aggregation(ck, ("aggregations", name), name, raw)
    return found


def _aggregation(ck: Checker, path: PathKey, name: str, a: Dict[str, Any]) -> Aggregation:
    name_ok(ck, path, name, "aggregation")
    if name in ck.maps or name in ck.data.get("maps", {}):
        ck.err(path, f"'{name}' is already a map's name", key=True)
        raise Skip
    kind = a["kind"]
    keys = _keys(ck, path, a)
    linear = _linear(ck, path, kind, a)
    origin = ck.origin(path)
    fields = [(k.name, k.type, origin) for k in keys]
    stack_pid = any(k.type.base == "ustack" for k in keys)
    if stack_pid:
        fields.append((STACK_PID, TypeRef("u32"), "the pid whose addresses a ustack holds"))
    if kind in HISTOGRAMS:
        fields.append(("bucket", TypeRef("u64"), "the histogram bucket's index"))
    if fields:
        kstruct = Struct(f"er_agg_{name}", lay_out(tuple(fields), {}), origin, internal=True)
        ck.msg_structs.append(kstruct)
        key = TypeRef(kstruct.name)
    else:
        key = TypeRef("u32")  # no key: the one entry 0
    value = TypeRef("u64") if kind in HISTOGRAMS else TypeRef(_slot(ck).name)
    # Not in ck.maps: count, add, elapsed and map outputs must not reach an aggregation's
    # map, whose layout only the aggregate action and runner/runtime/aggdump.py know.
    m = Map(name, "percpu_hash", key, value, int(a.get("max_entries", DEFAULT_MAX_ENTRIES)),
            0, origin)
    clear = bool(a.get("clear", False))
    if clear and kind in ("min", "max"):
        ck.err((*path, "clear"), f"a {kind} over an interval cannot be worked out from "
               "running totals", "use stats, or leave clear out", key=True)
    metric = _metric(ck, path, name, kind, keys, a)
    if a.get("at_exit") is False and "every" not in a and "metric" not in a:
        ck.err(path, f"aggregation '{name}' is never shown: give 'every' or 'metric', or "
               "leave 'at_exit' on", key=True)
    return Aggregation(
        name=name, kind=kind, map=m, keys=keys, unit=a.get("unit"), linear=linear,
        every=a.get("every"), at_exit=bool(a.get("at_exit", True)), clear=clear,
        top=a.get("top"), metric=metric, origin=origin,
        keeps_sum=metric is not None and kind in HISTOGRAMS, stack_pid=stack_pid)


def _slot(ck: Checker) -> Struct:
    for s in ck.msg_structs:
        if s.name == SLOT:
            return s
    fields = tuple((n, TypeRef(t), "struct agg_slot (runner/model/aggregates.py)")
                   for n, t in (("count", "u64"), ("sum", "s64"), ("min", "s64"),
                                ("max", "s64")))
    slot = Struct(SLOT, lay_out(fields, {}), "aggregation slot", internal=True)
    ck.msg_structs.append(slot)
    return slot


def _keys(ck: Checker, path: PathKey, a: Dict[str, Any]) -> Tuple[AggKey, ...]:
    decoders = _decoders(ck)
    wanted: Dict[str, str] = a.get("decode", {})
    out = []
    for fname, tname in a.get("key", {}).items():
        fpath = (*path, "key", fname)
        name_ok(ck, fpath, fname, "field")
        t = type_of(ck, fpath, tname, stacks=True)
        if t is None:
            raise Skip
        if t.is_struct or (t.count is not None and not t.is_string):
            ck.err(fpath, f"a key field is a scalar or char[N], not {t}")
            raise Skip
        out.append(AggKey(fname, t, wanted.get(fname)))
    hex_companions_free(ck, [(k.name, k.type, (*path, "key", k.name)) for k in out])
    names = {k.name for k in out}
    for fname, dname in wanted.items():
        dpath = (*path, "decode", fname)
        if fname not in names:
            ck.err(dpath, f"'{fname}' is not a key field", key=True)
        elif decoders is not None:
            try:
                decoder = decoders.get(dname)
            except (UnknownDecoder, UnknownEnum) as e:
                ck.err(dpath, str(e))
                continue
            t = next(k.type for k in out if k.name == fname)
            if not decoder.fits(t):
                ck.err(dpath, f"key field '{fname}' is {t}: decoder '{dname}' takes "
                       f"{decoder.takes()}")
    return tuple(out)


def _decoders(ck: Checker) -> Optional[Decoders]:
    try:
        return Decoders.for_arch(ck.arch)
    except KeyError:
        return None  # reported: no syscall table for this architecture


def _linear(ck: Checker, path: PathKey, kind: str,
            a: Dict[str, Any]) -> Optional[Tuple[int, int, int]]:
    if kind != "lhist":
        if "lhist" in a:
            ck.err((*path, "lhist"), "'lhist' applies to kind lhist only", key=True)
        return None
    lh = a.get("lhist")
    if lh is None:
        ck.err(path, "kind lhist needs 'lhist: {min, max, step}'")
        raise Skip
    lo, hi, step = lh["min"], lh["max"], lh["step"]
    for bound, value in (("min", lo), ("max", hi)):
        if not S64_MIN <= value <= S64_MAX:
            ck.err((*path, "lhist", bound), f"{bound} must fit an s64 (the values compared "
                   f"with it are s64): {S64_MIN} to {S64_MAX}; got {value}")
            raise Skip
    if step <= 0 or hi <= lo or (hi - lo) % step:
        ck.err((*path, "lhist"), f"needs min < max, step > 0 and max - min a multiple of "
               f"step; got min={lo} max={hi} step={step}")
        raise Skip
    if (hi - lo) // step > MAX_LHIST_BUCKETS:
        # Every bucket is a map entry per key, a line of every dump and a series of
        # every scrape: bpftrace's own limit, with its words.
        ck.err((*path, "lhist"), f"too many buckets, must be <= {MAX_LHIST_BUCKETS} (would "
               f"need {(hi - lo) // step}): widen step or narrow min..max")
        raise Skip
    return lo, hi, step


def _metric(ck: Checker, path: PathKey, name: str, kind: str, keys: Tuple[AggKey, ...],
            a: Dict[str, Any]) -> Optional[MetricDecl]:
    raw = a.get("metric")
    if raw is None:
        return None
    mpath = (*path, "metric")
    stack = next((k for k in keys if k.type.is_stack), None)
    if stack is not None:
        # A label per distinct stack: unbounded series, and frames are no label values.
        ck.err(mpath, f"key field '{stack.name}' is a stack: a stack is not a metric label",
               "leave metric out: --folded FILE and --flamegraph FILE show stack counts")
        return None
    if kind == "stats":
        ck.err(mpath, "a stats aggregation has five values: export a count, sum or avg "
               "aggregation instead", key=True)
        return None
    mkind = raw.get("type", _DEFAULT_METRIC[kind])
    if (mkind == "histogram") != (kind in HISTOGRAMS):
        ck.err((*mpath, "type"), f"a {kind} aggregation cannot be a {mkind}")
        return None
    mname = raw.get("name", f"{name}_total" if mkind == "counter" else name)
    # A histogram's label set is 66 series (hist) or more: 10,000 of them made scrapes that
    # passed Prometheus' 10 s timeout, so its default is ten times smaller.
    default_sets = 1_000 if kind in HISTOGRAMS else 10_000
    decl = MetricDecl(mname, mkind, raw.get("help", f"{kind} of {name}"),
                      int(raw.get("max_label_sets", default_sets)))
    # The exporter's own rules (names Prometheus would refuse or lint), checked here so
    # the error points at the spec. Imported here: the check stage otherwise never needs
    # prometheus-client.
    from runner.support.metric_names import MetricsError, validate_label_names, validate_metric_name
    try:
        validate_metric_name(decl.name, mkind)  # type: ignore[arg-type]
        validate_label_names(tuple(k.name for k in keys), mkind)  # type: ignore[arg-type]
    except MetricsError as e:
        ck.err((*mpath, "name") if "name" in raw else mpath, str(e))
        return None
    return decl
