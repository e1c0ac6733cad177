"""Aggregations read from the kernel, dumped for people (text) and programs (JSON records).

The kernel keeps running totals per CPU; runner/model/aggregates.py folds them. A dump
with `clear` shows what was added since the previous dump (clearing.since): the kernel
entries are never deleted, so /metrics keeps its cumulative values and no update is lost
between a read and a delete.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from runner.kinds.decoders import Decoders, Json
from runner.kinds.units import SUM_BUCKET
from runner.model.aggregates import (
    AggSlotC,
    Entry,
    Histogram,
    Key,
    Layout,
    LinearLayout,
    Log2Layout,
    Stats,
    Value,
    build_histograms,
    build_scalars,
    scalar_value,
    slot_of,
    sort_entries,
    top,
)
from runner.model.spec import Aggregation, Spec
from runner.output.histogram import draw_histogram_map
from runner.output.records import histogram_record, stats_record
from runner.output.tables import entries_table
from runner.runtime import decode
from runner.runtime.clearing import since

Items = Iterable[Tuple[bytes, List[bytes]]]  # what Kernel.map_items yields


def layout_of(agg: Aggregation) -> Layout:
    if agg.linear is not None:
        return LinearLayout(*agg.linear)
    return Log2Layout()


class AggReader:
    """One aggregation's map rows -> {raw key tuple: Stats or Histogram}."""

    def __init__(self, types: Any, agg: Aggregation, decoders: Decoders):
        assert agg.map.key is not None
        self.agg = agg
        self.key_of = decode.value_decoder(types, agg.map.key)
        self.decoders = {k.name: decoders.get(k.decode) for k in agg.keys if k.decode}
        self.layout = layout_of(agg)

    def _key(self, raw: bytes) -> Tuple[Key, int]:
        if not self.agg.keys and self.agg.kind not in ("hist", "lhist"):
            return (), 0
        fields = self.key_of(raw)
        key = tuple(_plain(fields[k.name]) for k in self.agg.keys)
        return key, int(fields.get("bucket", 0))

    def read(self, items: Items) -> Dict[Key, Value]:
        if self.agg.kind in ("hist", "lhist"):
            rows = []
            sums: Dict[Key, int] = {}
            for kb, per_cpu in items:
                key, bucket = self._key(kb)
                counts = [int.from_bytes(v, sys.byteorder) for v in per_cpu]
                if bucket == SUM_BUCKET:  # u64 sums of s64 values: back to signed
                    sums[key] = _signed(sum(counts))
                else:
                    rows.append((key, bucket, counts))
            hists = build_histograms(rows, self.layout)
            return {k: replace(h, sum=sums.get(k) if self.agg.keeps_sum else None)
                    for k, h in hists.items()}
        slots = []
        for kb, per_cpu in items:
            key, _ = self._key(kb)
            slots.append((key, [slot_of(AggSlotC.from_buffer_copy(v)) for v in per_cpu]))
        return dict(build_scalars(slots))

    def label(self, key: Key) -> Tuple[str, ...]:
        """The key's parts as people read them (decoded where the spec says)."""
        return tuple(self._text(k.name, part) for k, part in zip(self.agg.keys, key))

    def metric_label(self, key: Key) -> Tuple[str, ...]:
        """The key's parts as label values: decoded where the spec says, strings exact (the
        exposition format escapes what it must; text output's escapes would be taken for
        part of the value)."""
        return tuple(_exact(self._decoded(k.name, part))
                     for k, part in zip(self.agg.keys, key))

    def _decoded(self, field: str, raw: object) -> object:
        d = self.decoders.get(field)
        return d(raw) if d is not None else raw

    def _text(self, field: str, raw: object) -> str:
        d = self.decoders.get(field)
        return d.text(raw) if d is not None else str(raw)

    def json_key(self, key: Key) -> Dict[str, Json]:
        out: Dict[str, Json] = {}
        for k, part in zip(self.agg.keys, key):
            d = self.decoders.get(k.name)
            if d is not None:
                out.update(d.json_fields(k.name, part))
            else:
                out[k.name] = part if isinstance(part, int) else _exact(part)
        return out


def _signed(total: int) -> int:
    total %= 1 << 64
    return total - (1 << 64) if total >= 1 << 63 else total


def _plain(value: Any) -> Any:
    """A key part: an int, or a str whose content is exact (an escape.Text formats as text
    output shows it)."""
    return value if isinstance(value, (int, str)) else str(value)


def _exact(value: object) -> str:
    return str.__str__(value) if isinstance(value, str) else str(value)


def shown(agg: Aggregation, value: Value) -> Value:
    """What a dump shows of a key: the kind's number, all of a stats, or the histogram."""
    if isinstance(value, Stats) and agg.kind != "stats":
        return scalar_value(value, agg.kind)  # type: ignore[arg-type]
    return value


class Dump:
    """One aggregation's dumps: the baseline for `clear`, the entries shown."""

    def __init__(self, reader: AggReader):
        self.reader = reader
        self.agg = reader.agg
        self.baseline: Dict[Key, Value] = {}

    def entries(self, items: Items) -> List[Entry]:
        current = self.reader.read(items)
        values = current
        if self.agg.clear:
            values = since(current, self.baseline, self.agg.kind)  # type: ignore[arg-type]
            self.baseline = current
        entries = [Entry(k, shown(self.agg, v)) for k, v in values.items()]
        if self.agg.top is not None:
            return top(entries, self.agg.top)
        return sort_entries(entries)

    def text(self, entries: List[Entry]) -> str:
        agg, r = self.agg, self.reader
        if agg.kind in ("hist", "lhist"):
            hists = {r.label(e.key): e.value for e in entries}
            return draw_histogram_map(agg.name, hists).rstrip("\n")  # type: ignore[arg-type]
        rows = [Entry(r.label(e.key), e.value) for e in entries]
        columns = [k.name.upper() for k in agg.keys]
        table = entries_table(columns, rows, agg.kind, agg.unit)  # type: ignore[arg-type]
        return f"@{agg.name}:\n{table.rstrip()}"

    def records(self, entries: List[Entry]) -> List[Dict[str, Any]]:
        agg, r = self.agg, self.reader
        out: List[Dict[str, Any]] = []
        for e in entries:
            key = r.json_key(e.key)
            if isinstance(e.value, Histogram):
                out.append(dict(histogram_record(agg.name, key, e.value, agg.unit)))
            elif isinstance(e.value, Stats):
                out.append(dict(stats_record(agg.name, key, e.value, agg.unit)))
            else:  # the shape of records.ScalarRecord, from the value already shown
                out.append({"type": "map", "map": agg.name, "key": key, "unit": agg.unit,
                            "kind": agg.kind, "value": e.value})
        return out


class Aggregations:
    """Every aggregation of a spec: when each is due, and its dumps through the sink."""

    def __init__(self, spec: Spec, types: Any, decoders: Optional[Decoders] = None):
        decoders = decoders or Decoders.for_arch(spec.arch)
        self.decoders = decoders
        self.dumps = {a.name: Dump(AggReader(types, a, decoders)) for a in spec.aggregations}
        self.due: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def start(self, started: float) -> None:
        self.due = {n: started + d.agg.every for n, d in self.dumps.items() if d.agg.every}

    def wait(self, now: float) -> List[float]:
        return [t - now for t in self.due.values()]

    def tick(self, k: Any, sink: Any, should_stop: Callable[[], bool]) -> None:
        now = time.monotonic()
        for name, t in list(self.due.items()):
            if now >= t and not should_stop():
                self.dump(k, sink, name)
                self.due[name] = t + (self.dumps[name].agg.every or 0)

    def final(self, k: Any, sink: Any) -> None:
        for name, d in self.dumps.items():
            if d.agg.at_exit:
                self.dump(k, sink, name)

    def dump(self, k: Any, sink: Any, name: str) -> None:
        d = self.dumps[name]
        entries = d.entries(k.map_items(d.agg.map))
        sink.aggregation(name, d.text(entries), d.records(entries))
        self.counts[name] = self.counts.get(name, 0) + 1
