"""Aggregations read from the kernel, dumped for people (text) and programs (JSON records).

The kernel keeps running totals per CPU; runner/model/aggregates.py folds them. A dump
with `clear` shows what was added since the previous dump (clearing.since): a key that is
still counting is never deleted, so /metrics keeps its cumulative value and no update is
lost between a read and a delete; a key idle for a whole interval is evicted (Dump).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from runner.kernel.maps import DumpInterrupted
from runner.kinds.decoders import Decoders, Json
from runner.kinds.units import SUM_BUCKET
from runner.model.aggregates import (
    Entry,
    Histogram,
    Key,
    Layout,
    LinearLayout,
    Log2Layout,
    Stats,
    Value,
    build_histograms,
    fold_slots,
    scalar_value,
    sort_entries,
    top,
)
from runner.model.spec import Aggregation, Spec
from runner.model.stacks import STACK_PID
from runner.output import stacks as stack_text
from runner.output.escape import hex_of
from runner.output.histogram import draw_histogram, draw_histogram_map
from runner.output.records import histogram_record, stats_record
from runner.output.tables import entries_table
from runner.runtime import decode
from runner.runtime.clearing import plus, since, subtract
from runner.runtime.dump_stamp import Stamp, wall_clock
from runner.runtime.stacks import Parts, StackReader, resolved

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
        self.hist = agg.kind in ("hist", "lhist")
        # A ustack's pid is a hidden part of the key, last (runner/runtime/stacks.py)
        self.names = [k.name for k in agg.keys] + ([STACK_PID] if agg.stack_pid else [])
        names = self.names + (["bucket"] if self.hist else [])
        self.unpack = decode.tuple_decoder(types, agg.map.key.base, names) \
            if agg.map.key.is_struct else None

    def _key(self, raw: bytes) -> Tuple[Key, int]:
        if not self.agg.keys and not self.hist:
            return (), 0
        if self.unpack is not None:  # the fast way, one unpack per key
            parts = self.unpack(raw)
            if self.hist:
                return tuple(_plain(p) for p in parts[:-1]), parts[-1]
            return tuple(_plain(p) for p in parts), 0
        fields = self.key_of(raw)
        key = tuple(_plain(fields[n]) for n in self.names)
        return key, int(fields.get("bucket", 0))

    def read(self, items: Items, raw: Optional[Dict[Key, List[bytes]]] = None
             ) -> Dict[Key, Value]:
        """{key: value}; with `raw`, also each key's kernel keys (a histogram has one per
        bucket), for deleting it."""
        if self.hist:
            return self._histograms(items, raw)
        out: Dict[Key, Value] = {}
        for kb, per_cpu in items:
            key, _ = self._key(kb)
            if raw is not None:
                raw[key] = [kb]
            out[key] = fold_slots(per_cpu)
        return out

    def _histograms(self, items: Items, raw: Optional[Dict[Key, List[bytes]]]
                    ) -> Dict[Key, Value]:
        rows = []
        sums: Dict[Key, int] = {}
        seen = set()
        for kb, per_cpu in items:
            # A walk of a hash map starts again from its first key when the key it stands
            # on is deleted meanwhile (an eviction while /metrics reads): count each once.
            if kb in seen:
                continue
            seen.add(kb)
            key, bucket = self._key(kb)
            if raw is not None:
                raw.setdefault(key, []).append(kb)
            counts = [int.from_bytes(v, sys.byteorder) for v in per_cpu]
            if bucket == SUM_BUCKET:  # u64 sums of s64 values: back to signed
                sums[key] = _signed(sum(counts))
            else:
                rows.append((key, bucket, counts))
        hists = build_histograms(rows, self.layout)
        return {k: replace(h, sum=sums.get(k) if self.agg.keeps_sum else None)
                for k, h in hists.items()}

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
                raw = hex_of(part)  # a char[N] part that is not UTF-8: its bytes too
                if raw is not None:
                    out.setdefault(f"{k.name}_hex", raw)
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


# At most this many keys are shown by a dump whose spec gives no `top`: the largest, and
# the others counted in a note. Formatting and printing a million rows takes longer than
# a dump interval, and nobody reads them.
MAX_ROWS = 10_000


@dataclass
class Shown:
    """What one dump shows: the entries, and how many other keys it left out."""

    entries: List[Entry]
    hidden: int = 0


# A count or sum of no events is 0: a keyless one shows it (bpftrace prints `@: 0`), so an
# interval without events is a row like the others, not a missing one.
ZERO_WHEN_EMPTY = ("count", "sum")




class Dump:
    """One aggregation's dumps: the baseline for `clear`, the entries shown, and the
    eviction of idle keys.

    An aggregation dumped every interval with `clear` shows what each key gained since the
    previous dump, so a key whose value did not change between two dumps has shown all it
    holds: its kernel entries are deleted (evicted), or keys of processes long gone (a pid)
    would fill the map and every new key would be lost. The delete is a lookup-and-delete:
    what the key gained between the read and the delete is shown by the next dump.
    """

    def __init__(self, reader: AggReader):
        self.reader = reader
        self.agg = reader.agg
        self.baseline: Dict[Key, Value] = {}
        self.pending: Dict[Key, Value] = {}  # gained by evicted keys after the last read
        self.idle: Dict[Key, List[bytes]] = {}  # key -> its kernel keys, to evict
        self.evicted = 0

    @property
    def evicts(self) -> bool:
        return self.agg.clear and self.agg.every is not None

    def entries(self, items: Items) -> Shown:
        raw: Optional[Dict[Key, List[bytes]]] = {} if self.evicts else None
        current = self.reader.read(items, raw)
        values = current
        if self.agg.clear:
            values = since(current, self.baseline, self.agg.kind)  # type: ignore[arg-type]
            values, self.pending = plus(values, self.pending), {}
            if raw is not None:
                self.idle = {k: raw[k] for k, v in current.items()
                             if k not in values and self.baseline.get(k) == v}
            self.baseline = current
        entries = [Entry(k, shown(self.agg, v)) for k, v in values.items()]
        if not entries and not self.agg.keys and self.agg.kind in ZERO_WHEN_EMPTY:
            entries = [Entry((), 0)]
        n = MAX_ROWS if self.agg.top is None else self.agg.top
        if len(entries) > n:
            return Shown(top(entries, n), len(entries) - n if self.agg.top is None else 0)
        return Shown(sort_entries(entries))

    def evict(self, delete: Callable[[Any, List[bytes]], List[Optional[List[bytes]]]]) -> int:
        """Delete the keys the last dump found idle; how many."""
        if not self.idle:
            return 0
        idle, self.idle = self.idle, {}
        kbs = [kb for raws in idle.values() for kb in raws]
        last = dict(zip(kbs, delete(self.agg.map, kbs)))
        held = self.reader.read([(kb, v) for kb, v in last.items() if v is not None])
        for key in idle:
            old = self.baseline.pop(key)
            gained = held.get(key)
            if gained is not None and gained != old:  # an update after the dump's read
                self.pending[key] = subtract(gained, old)
        self.evicted += len(idle)
        return len(idle)

    def text(self, entries: List[Entry]) -> str:
        agg, r = self.agg, self.reader
        if agg.kind in ("hist", "lhist"):
            hists = {r.label(e.key): e.value for e in entries}
            return draw_histogram_map(agg.name, hists).rstrip("\n")  # type: ignore[arg-type]
        rows = [Entry(r.label(e.key), e.value) for e in entries]
        columns = [k.name.upper() for k in agg.keys]
        table = entries_table(columns, rows, agg.kind, agg.unit)  # type: ignore[arg-type]
        return f"@{agg.name}:\n{table.rstrip()}"

    def stack_text(self, rows: List[Tuple[Parts, Entry]]) -> str:
        """A dump of keys holding stacks, as bpftrace prints `@name[kstack, comm]: 3`:
        one frame a line, innermost first (a table cannot hold them)."""
        name = self.agg.name
        lines = []
        for parts, e in rows:
            key = stack_text.key_text(parts)
            if isinstance(e.value, Histogram):
                lines.append(f"@{name}{key}: \n{draw_histogram(e.value)}")
            elif isinstance(e.value, Stats):
                v = e.value
                lines.append(f"@{name}{key}: count {v.count}, average {v.avg}, total {v.sum}")
            else:
                lines.append(f"@{name}{key}: {e.value}")
        return "\n".join(lines)

    def records(self, entries: List[Entry], rows: Optional[List[Tuple[Parts, Entry]]] = None
                ) -> List[Dict[str, Any]]:
        """JSON records; with `rows` (keys holding stacks), a stack is a list of frames."""
        agg, r = self.agg, self.reader
        out: List[Dict[str, Any]] = []
        for i, e in enumerate(entries):
            key: Dict[str, Any] = dict(r.json_key(e.key))
            if rows is not None:
                key.update({k.name: stack_text.as_json(rows[i][0][j])
                            for j, k in enumerate(agg.keys) if k.type.is_stack})
            if isinstance(e.value, Histogram):
                out.append(dict(histogram_record(agg.name, key, e.value, agg.unit)))
            elif isinstance(e.value, Stats):
                out.append(dict(stats_record(agg.name, key, e.value, agg.unit)))
            else:  # the shape of records.ScalarRecord, from the value already shown
                out.append({"type": "map", "map": agg.name, "key": key, "unit": agg.unit,
                            "kind": agg.kind, "value": e.value})
        return out


class Aggregations:
    """Every aggregation of a spec: when each is due, and its dumps through the sink.

    A dump that ends after its next one was due (a slow read of a big map, a busy loop)
    does not make the dumps fall behind, one late dump after another: the intervals it
    overran are skipped, said in a note and counted (the next dump of a `clear`
    aggregation shows what they added)."""

    def __init__(self, spec: Spec, types: Any, decoders: Optional[Decoders] = None):
        decoders = decoders or Decoders.for_arch(spec.arch)
        self.decoders = decoders
        self.dumps = {a.name: Dump(AggReader(types, a, decoders)) for a in spec.aggregations}
        self.stacks = StackReader(spec)
        self.due: Dict[str, float] = {}
        self.interval: Dict[str, int] = {}  # the interval the next dump closes (`every`)
        self.counts: Dict[str, int] = {}
        self.skipped: Dict[str, int] = {}  # intervals skipped after late dumps
        self.cut: List[str] = []  # final dumps a second signal cut short (or left out)

    @property
    def evicted(self) -> Dict[str, int]:
        """Keys evicted so far, per aggregation that evicts (for the summary and /metrics)."""
        return {n: d.evicted for n, d in self.dumps.items() if d.evicts}

    def add_to_summary(self, channels: Dict[str, Dict[str, int]]) -> None:
        """Each aggregation's evicted keys and skipped intervals, where there were any,
        beside its dumps."""
        for name, d in self.dumps.items():
            extra = {"evicted": d.evicted, "skipped": self.skipped.get(name, 0)}
            for field, n in extra.items():
                if n:
                    channels.setdefault(name, {"dumps": 0})[field] = n

    def start(self, started: float) -> None:
        self.due = {n: started + d.agg.every for n, d in self.dumps.items() if d.agg.every}
        self.interval = {n: 1 for n in self.due}

    def wait(self, now: float) -> List[float]:
        return [t - now for t in self.due.values()]

    def tick(self, k: Any, sink: Any, should_stop: Callable[[], bool]) -> None:
        for name, t in list(self.due.items()):
            if time.monotonic() < t or should_stop():
                continue
            try:
                self.dump(k, sink, name, should_stop)
            except DumpInterrupted as e:
                sink.note(f"aggregation {name}: a dump gave way to the stop ({e})")
                return  # the dump at exit follows
            self.dumps[name].evict(k.maps.delete_items)
            self.due[name] = self._next(sink, name, t, time.monotonic())

    def _next(self, sink: Any, name: str, due: float, now: float) -> float:
        """When the dump after the one due at `due` is due, now that it ended at `now`."""
        every = self.dumps[name].agg.every or 0
        skipped = int((now - due) // every)
        self.interval[name] = self.interval.get(name, 1) + skipped + 1
        if skipped:
            self.skipped[name] = self.skipped.get(name, 0) + skipped
            sink.note(f"aggregation {name}: dump {self.counts.get(name, 0)} was late by "
                      f"{now - due:.2f} s (every {every:g} s): {skipped} interval"
                      f"{'s' if skipped != 1 else ''} skipped")
        return due + (skipped + 1) * every

    def final(self, k: Any, sink: Any, should_stop: Callable[[], bool] = lambda: False
              ) -> None:
        """The dumps at exit; a further signal (should_stop) cuts them short."""
        names = [n for n, d in self.dumps.items() if d.agg.at_exit]
        for i, name in enumerate(names):
            try:
                if should_stop():
                    raise DumpInterrupted(f"aggregation {name}: not started")
                self.dump(k, sink, name, should_stop)
            except DumpInterrupted as e:
                self.cut = names[i:]
                sink.note(f"aggregation dump cut short by a signal ({e})")
                return

    def dump(self, k: Any, sink: Any, name: str,
             should_stop: Callable[[], bool] = lambda: False) -> None:
        d = self.dumps[name]
        stamp = Stamp(wall_clock(), self.interval[name]) if name in self.interval else None
        shown = d.entries(k.maps.map_items(d.agg.map, should_stop))
        if d.agg.has_stacks:
            rows = resolved(self.stacks, k.maps, d.agg, shown.entries)
            text, records = d.stack_text(rows), d.records(shown.entries, rows)
        else:
            text, records = d.text(shown.entries), d.records(shown.entries)
        if stamp is not None:
            text = f"{stamp.header}\n{text}" if text else stamp.header
            records = [{**r, **stamp.fields} for r in records]
        sink.aggregation(name, text, records)
        self.counts[name] = self.counts.get(name, 0) + 1
        if shown.hidden:
            sink.note(f"aggregation {name}: dump {self.counts[name]} shows the largest "
                      f"{len(shown.entries)} keys; {shown.hidden} more not shown (give "
                      "`top` to choose how many)")
