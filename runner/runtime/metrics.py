"""`--metrics HOST:PORT`: a spec's aggregations and ebpf-run's own counts on /metrics.

Each scrape reads the maps on the HTTP server's thread while the run loop polls: BCC lets
two threads read one map as long as each walks its own iterator (Kernel.map_items makes a
new one per call), and the kernel values only grow, so no lock with the loop is needed.
The runner's own counts are plain ints and dicts read whole: a scrape sees them as of
some moment of the loop.
"""

from __future__ import annotations

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

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from runner.kinds.decoders import Decoders
from runner.kinds.units import MAX_LE_SECONDS, NS_PER, UNIT_SCALE
from runner.model.spec import Spec
from runner.output.prometheus import (
    FamilySnapshot,
    MetricKind,
    MetricSpec,
    ProbeState,
    RunnerStatus,
    SpecCollector,
    registry_for,
    snapshot,
)
from runner.output.prometheus_server import MetricsServer, parse_listen
from runner.runtime.aggdump import AggReader, layout_of
from runner.runtime.aggregates import Histogram, Key, Layout, Log2Layout, Stats, scalar_value

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


class SpecMetrics:
    """The read callback of one spec's SpecCollector."""

    def __init__(self, spec: Spec, types: Any, map_items: MapItems):
        decoders = Decoders.for_arch(spec.arch)
        self.aggs = {a.name: a for a in spec.aggregations}
        self.exported = metric_specs(spec)
        self.readers = {name: AggReader(types, self.aggs[name], decoders)
                        for _, name in self.exported}
        self.map_items = map_items

    def read(self) -> Iterable[FamilySnapshot]:
        snaps = []
        for metric, name in self.exported:
            reader = self.readers[name]
            values: Dict[Key, Union[int, float, Histogram]] = {}
            for key, value in reader.read(self.map_items(self.aggs[name].map)).items():
                values[reader.label(key)] = _number(value, self.aggs[name].kind)
            snaps.append(snapshot(metric, values))
        return snaps


def _number(value: Any, kind: str) -> Union[int, float, Histogram]:
    if isinstance(value, Histogram):
        return value
    assert isinstance(value, Stats)
    shown = scalar_value(value, kind)  # type: ignore[arg-type]
    assert not isinstance(shown, Stats)
    return float("nan") if shown is None else shown  # a min before any value


class Evictions(Collector):
    """ebpf_run_aggregation_keys_evicted_total{spec,aggregation}: idle keys an aggregation
    deleted (aggdump.Dump). Kept here, beside output/prometheus.py's RunnerCollector, until
    RunnerStatus carries it (issue 23's agent serves many specs through that one)."""

    def __init__(self, spec: str, evicted: Callable[[], Mapping[str, int]]):
        self.spec = spec
        self.evicted = evicted

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "ebpf_run_aggregation_keys_evicted",
            "Keys deleted from an aggregation's map after an interval without a change.",
            labels=["spec", "aggregation"])
        for name, n in sorted(self.evicted().items()):
            family.add_metric([self.spec, name], n)
        yield family


class Served:
    """The server of one run; `stop()` is safe to call whether it started or not."""

    def __init__(self, listen: str, spec: Spec, types: Any, map_items: MapItems,
                 status: Callable[[], RunnerStatus],
                 evicted: Callable[[], Mapping[str, int]] = dict):
        host, port = parse_listen(listen)
        metrics = SpecMetrics(spec, types, map_items)
        self.collector = SpecCollector(spec.name, [m for m, _ in metrics.exported],
                                       metrics.read)
        registry = registry_for([(self.collector, status)])
        registry.register(Evictions(spec.name, evicted))
        self.server = MetricsServer(registry, host, port)

    def start(self) -> int:
        return self.server.start().port

    def stop(self) -> None:
        self.server.stop()


def runner_status(received: Mapping[str, int], lost: Mapping[Tuple[str, str], int],
                  attached: Mapping[str, Optional[str]]) -> RunnerStatus:
    """A copy, so the HTTP thread never iterates a dict the loop is changing."""
    return RunnerStatus(dict(received), dict(lost),
                        tuple(ProbeState(p, how is not None, how or "none")
                              for p, how in list(attached.items())))


def serve(listen: str, spec: Spec, types: Any, k: Any, received: Mapping[str, int],
          lost: Mapping[Tuple[str, str], int], attached: Mapping[str, Optional[str]],
          evicted: Callable[[], Mapping[str, int]] = dict) -> Tuple[Served, int]:
    """Start serving; the port it listens on (the one asked for, or the one given for 0)."""
    served = Served(listen, spec, types, k.map_items,
                    lambda: runner_status(received, lost, attached), evicted)
    return served, served.start()
