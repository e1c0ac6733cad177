"""`--metrics HOST:PORT`: a spec's aggregations and ebpf-run's own counts on /metrics.

Each scrape reads the maps on the HTTP server's thread while the run loop polls: every
read is its own system calls with its own buffers (kernel/map_reads.py; a batch walk, a
lookup, a count), and the kernel values only grow, so no lock with the loop is needed. What
a scrape reads is bounded by each metric's max_label_sets (SpecMetrics), and the system
calls release the GIL, so a big map does not starve the loop of its events.
The runner's own counts are plain ints and dicts read whole: a scrape sees them as of
some moment of the loop.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import replace
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Tuple,
    Union,
)

from runner.kinds.decoders import Decoders
from runner.kinds.units import MAX_LE_SECONDS, NS_PER, SUM_BUCKET, UNIT_SCALE
from runner.model.aggregates import Histogram, Key, Layout, Log2Layout, Stats, scalar_value
from runner.model.spec import Aggregation, Map, Spec
from runner.output.prometheus import (
    FamilySnapshot,
    MetricKind,
    MetricsError,
    MetricSpec,
    SpecCollector,
    snapshot,
)
from runner.output.prometheus_registry import ProbeState, RunnerStatus, SpecRegistry
from runner.output.prometheus_server import Listener, MetricsServer, parse_listen
from runner.runtime.aggdump import AggReader, layout_of

MapItems = Callable[[Any], Any]  # Kernel.map_items


def metric_specs(spec: Spec) -> List[Tuple[MetricSpec, str]]:
    """(MetricSpec, aggregation name) for every aggregation the spec exports."""
    out = []
    for agg in spec.aggregations:
        if agg.metric is None:
            continue
        kind: MetricKind = agg.metric.kind  # type: ignore[assignment]
        scale = UNIT_SCALE.get(agg.unit or "", 1.0) if kind == "histogram" else 1.0
        layout = layout_of(agg)
        out.append((MetricSpec(agg.metric.name, agg.metric.help, kind,
                               tuple(k.name for k in agg.keys), scale, layout,
                               _le_indexes(layout, agg.unit) if kind == "histogram" else None,
                               agg.metric.max_label_sets),
                    agg.name))
    return out


def _le_indexes(layout: Layout, unit: Optional[str]) -> Optional[Tuple[int, ...]]:
    """A log2 histogram of a time exports its bounds up to MAX_LE_SECONDS; a linear one,
    and other units, all their bounded buckets (None: MetricSpec's default)."""
    if not isinstance(layout, Log2Layout) or unit not in NS_PER:
        return None
    top = MAX_LE_SECONDS / UNIT_SCALE[unit]
    return tuple(i for i in range(1, layout.size)
                 if (upper := layout.bounds(i)[1]) is not None and upper <= top)


Lookup = Callable[[Map, List[bytes]], Dict[bytes, List[bytes]]]  # map_reads.lookup_many
Count = Callable[[Map], int]  # map_reads.count_entries
# Scrapes closer together than this are answered from the previous read: a scraper (or
# anyone who can connect) asking in a loop costs one read a second, not a read each.
MIN_READ_INTERVAL_S = 1.0
COUNT_EVERY_S = 30.0  # see Bounded._entries


class SpecMetrics:
    """The read callback of one spec's SpecCollector. Each metric reads at most its
    `max_label_sets` keys: until it has them all it walks the map, admitting keys as they
    come, and stops once full; then it looks up the keys it admitted and counts the rest
    in the kernel's batches, without decoding or even copying them one by one. A scrape of
    a million keys costs what one of max_label_sets keys does, plus a count.
    Histograms have a row per (key, bucket) and so are walked whole, but only the rows of
    admitted keys are decoded."""

    def __init__(self, spec: Spec, types: Any, map_items: MapItems,
                 lookup: Optional[Lookup] = None, count: Optional[Count] = None,
                 clock: Callable[[], float] = time.monotonic):
        decoders = Decoders.for_arch(spec.arch)
        self.aggs = {a.name: a for a in spec.aggregations}
        self.exported = metric_specs(spec)
        self.readers = {name: AggReader(types, self.aggs[name], decoders)
                        for _, name in self.exported}
        self.bounded = {name: Bounded(self.aggs[name], metric.max_label_sets, types)
                        for metric, name in self.exported}
        self.map_items = map_items
        self.lookup = lookup or (lambda m, keys: _lookup_by_walking(map_items, m, keys))
        self.count = count or (lambda m: sum(1 for _ in map_items(m)))
        self.clock = clock
        self._last: Optional[Tuple[float, List[FamilySnapshot]]] = None

    def read(self) -> Iterable[FamilySnapshot]:
        now = self.clock()
        if self._last is not None and now - self._last[0] < MIN_READ_INTERVAL_S:
            return self._last[1]
        snaps = []
        for metric, name in self.exported:
            reader = self.readers[name]
            rows, unread = self.bounded[name].rows(self)
            values: Dict[Key, Union[int, float, Histogram]] = {}
            for key, value in reader.read(rows).items():
                values[reader.metric_label(key)] = _number(value, self.aggs[name].kind)
            snaps.append(replace(snapshot(metric, values), unread=unread))
        self._last = (now, snaps)
        return snaps


class Bounded:
    """Which keys of one aggregation's map a metric exports: the first `limit` seen, by
    their bytes (a histogram's without its bucket), so that no key is decoded to find out
    it is not exported. A key gone from the map frees its place."""

    def __init__(self, agg: Aggregation, limit: int, types: Any):
        self.agg = agg
        self.limit = limit
        self.admitted: Dict[bytes, None] = {}  # insertion-ordered set
        self._counted: Optional[Tuple[float, int]] = None  # (when, entries)
        self.bucket: Optional[Tuple[int, int]] = None  # (offset, size) of the bucket field
        self.buckets: Tuple[bytes, ...] = ()  # each bucket's bytes in a histogram's key
        if agg.kind in ("hist", "lhist"):
            assert agg.map.key is not None
            field = getattr(types, agg.map.key.base).bucket
            self.bucket = (field.offset, field.size)
            # The entries a key can have: its layout's buckets, and its sum's (SUM_BUCKET).
            self.buckets = tuple(b.to_bytes(field.size, sys.byteorder) for b in (
                *range(layout_of(agg).size), *((SUM_BUCKET,) if agg.keeps_sum else ())))

    def rows(self, maps: SpecMetrics) -> Tuple[List[Tuple[bytes, List[bytes]]], int]:
        """The rows to export and how many label sets are left out (a histogram's: how
        many map entries, a bucket or a sum each)."""
        if self.bucket is not None:
            return self._histogram_rows(maps)
        m, adm = self.agg.map, self.admitted
        seen: Dict[bytes, List[bytes]] = {}
        full = len(adm) >= self.limit
        walked_all = not full
        if walked_all:
            for kb, values in maps.map_items(m):
                if kb not in adm:
                    if len(adm) >= self.limit:
                        walked_all = False
                        break  # full: what is left is counted, not read
                    adm[kb] = None
                seen[kb] = values
        missing = [kb for kb in adm if kb not in seen]
        if missing:
            # A map that holds no more entries than the keys to look up (one the size of
            # the limit) is walked instead: 4096 entries a system call, not one a key
            # (10,000 keys: 12 ms against 30-36 ms here, bench/agent_bench.py).
            found = (self._walk_admitted(maps, len(missing))
                     if full and len(missing) >= self._entries(maps) else None)
            if found is None:
                found = maps.lookup(m, missing)
            for kb in missing:
                if kb not in found:
                    del adm[kb]
            seen.update(found)
        unread = 0 if walked_all else max(0, self._entries(maps) - len(seen))
        return list(seen.items()), unread

    def _entries(self, maps: SpecMetrics) -> int:
        """The map's entries, counted again at most every COUNT_EVERY_S: a count walks every
        bucket in the kernel (3 s for a million keys here), and between two counts an
        aggregation's entries only grow, so an older count only undercounts the drops."""
        now = maps.clock()
        if self._counted is None or now - self._counted[0] >= COUNT_EVERY_S:
            self._counted = (now, maps.count(self.agg.map))
        return self._counted[1]

    def _histogram_rows(self, maps: SpecMetrics) -> Tuple[List[Tuple[bytes, List[bytes]]], int]:
        """As rows() does, by label set: a histogram's map has an entry per (key, bucket), so
        an admitted key is looked up bucket by bucket (every bucket its layout has, and its
        sum), or, where the map has fewer entries than that makes lookups, walked whole."""
        m, adm = self.agg.map, self.admitted
        seen: Dict[bytes, List[bytes]] = {}
        walked_all = len(adm) < self.limit
        if walked_all:
            for kb, values in maps.map_items(m):
                ident = self._ident(kb)
                if ident not in adm:
                    if len(adm) >= self.limit:
                        walked_all = False
                        break  # full: the admitted keys' other buckets are looked up
                    adm[ident] = None
                seen[kb] = values
        unread = 0
        if not walked_all:
            wanted = [kb for ident in adm for kb in self._bucket_keys(ident) if kb not in seen]
            entries = self._entries(maps)
            walked = self._walk_admitted(maps, len(wanted)) if len(wanted) >= entries else None
            if walked is None:
                seen.update(maps.lookup(m, wanted))
            else:
                seen = walked
            unread = max(0, entries - len(seen))
        present = {self._ident(kb) for kb in seen}
        for ident in [i for i in adm if i not in present]:
            del adm[ident]
        return list(seen.items()), unread

    def _walk_admitted(self, maps: SpecMetrics, budget: int
                       ) -> Optional[Dict[bytes, List[bytes]]]:
        """The admitted keys' entries from a walk of the whole map; None once it passes
        `budget` entries (the map grew since it was counted: the lookups cost less)."""
        out = {}
        for n, (kb, values) in enumerate(maps.map_items(self.agg.map), 1):
            if n > budget:
                return None
            if self._ident(kb) in self.admitted:
                out[kb] = values
        return out

    def _ident(self, kb: bytes) -> bytes:
        """A histogram entry's key without its bucket: the label set's bytes (any other
        aggregation's key is its label set's)."""
        if self.bucket is None:
            return kb
        at, size = self.bucket
        return kb[:at] + kb[at + size:]

    def _bucket_keys(self, ident: bytes) -> Iterator[bytes]:
        assert self.bucket is not None
        at = self.bucket[0]
        head, tail = ident[:at], ident[at:]
        for bucket in self.buckets:
            yield head + bucket + tail


def _lookup_by_walking(map_items: MapItems, m: Map, keys: List[bytes]
                       ) -> Dict[bytes, List[bytes]]:
    wanted = set(keys)
    return {kb: v for kb, v in map_items(m) if kb in wanted}


def _number(value: Any, kind: str) -> Union[int, float, Histogram]:
    if isinstance(value, Histogram):
        return value
    assert isinstance(value, Stats)
    shown = scalar_value(value, kind)  # type: ignore[arg-type]
    assert not isinstance(shown, Stats)
    return float("nan") if shown is None else shown  # a min before any value


class Served:
    """The /metrics server of a run (one spec) or of `ebpf-run serve` (several, added and
    removed while it serves, each labelled spec="NAME"); `stop()` is safe to call whether it
    started or not."""

    def __init__(self, listen: str, listener: Optional[Listener] = None,
                 many: bool = False):
        self.many = many
        self.specs = SpecRegistry(with_up=many)
        if listener is None:
            host, port = parse_listen(listen)
            self.server = MetricsServer(self.specs.registry, host, port)
        else:
            self.server = MetricsServer(self.specs.registry, listener=listener)

    def add(self, spec: Spec, types: Any, map_items: MapItems,
            status: Callable[[], RunnerStatus], lookup: Optional[Lookup] = None,
            count: Optional[Count] = None) -> SpecCollector:
        metrics = SpecMetrics(spec, types, map_items, lookup, count)
        collector = SpecCollector(spec.name, [m for m, _ in metrics.exported], metrics.read,
                                  spec_label=self.many)
        self.specs.add(collector, status)
        return collector

    def add_kernel(self, spec: Spec, types: Any, k: Any,
                   status: Callable[[], RunnerStatus]) -> SpecCollector:
        """A spec whose maps a loaded Kernel holds, read with the batched reads."""
        from runner.kernel.map_reads import count_entries, items_batched, lookup_many

        return self.add(spec, types, lambda m: items_batched(k.bpf, m), status,
                        lambda m, keys: lookup_many(k.bpf, m, keys),
                        lambda m: count_entries(k.bpf, m))

    def refuse_clash(self, spec: Spec) -> None:
        """Before a spec is loaded: MetricsError if another spec serves one of its metric
        names (Prometheus would merge or refuse the two)."""
        for metric, _ in metric_specs(spec):
            other = self.specs.serving(metric.name)
            if other is not None:
                raise MetricsError(f"metric {metric.name!r} is served already, by spec "
                                   f"{other!r}: one name, one spec")

    def remove(self, name: str, down: bool = False) -> None:
        self.specs.remove(name, down)

    def start(self) -> int:
        return self.server.start(on_exhausted=_say_exhausted).port

    def stop(self) -> None:
        self.server.stop()


def _say_exhausted() -> None:
    # From the server's thread: one write of one line, not through the sink the loop uses.
    with contextlib.suppress(OSError):
        os.write(2, b"ebpf-run: /metrics: out of file descriptors; closing the oldest idle "
                    b"connection and pausing accept (raise ulimit -n if it goes on)\n")


def runner_status(received: Mapping[str, int], lost: Mapping[Tuple[str, str], int],
                  attached: Mapping[str, Optional[str]],
                  evicted: Callable[[], Mapping[str, int]] = dict) -> RunnerStatus:
    """A copy, so the HTTP thread never iterates a dict the loop is changing."""
    return RunnerStatus(dict(received), dict(lost),
                        tuple(ProbeState(p, how is not None, how or "none")
                              for p, how in list(attached.items())), dict(evicted()))


def serve(listen: str, spec: Spec, types: Any, k: Any, received: Mapping[str, int],
          lost: Mapping[Tuple[str, str], int], attached: Mapping[str, Optional[str]],
          listener: Optional[Listener] = None,
          evicted: Callable[[], Mapping[str, int]] = dict) -> Tuple[Served, int]:
    """Start serving one spec; the port it listens on (the one asked for, or the one given
    for 0)."""
    served = Served(listen, listener)
    served.add_kernel(spec, types, k, lambda: runner_status(received, lost, attached, evicted))
    return served, served.start()
