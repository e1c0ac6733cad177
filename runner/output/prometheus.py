"""Prometheus metrics: maps exposed on /metrics through prometheus-client, read on each scrape.

Nothing here writes exposition text: prometheus-client does. The language side declares
MetricSpecs (name, help, kind, label names) and hands a callback that returns the maps'
current contents as FamilySnapshots; SpecCollector turns them into metric families when
Prometheus scrapes. prometheus_registry.RunnerCollector adds ebpf-run's own metrics,
labelled by spec, so one process serves several specs (`ebpf-run serve`; a run is the case
of one, through the same SpecRegistry):

    ebpf_run_events_received_total{spec,channel}
    ebpf_run_events_lost_total{spec,channel,reason}
    ebpf_run_probe_attached{spec,probe,how}            1 attached, 0 not (how="none")
    ebpf_run_metric_samples_dropped_total{spec,metric} refused by the label-set limit
    ebpf_run_metric_read_errors_total{spec}            the read callback raised
    ebpf_run_aggregation_keys_evicted_total{spec,aggregation}  idle keys deleted
    ebpf_run_spec_up{spec}                             serve only: 1 running, 0 failed

runner.output.prometheus_server serves a registry on HOST:PORT.

Histogram buckets: a bucket [lower, upper) of integers holds the values <= upper - 1, so
its `le` is (upper - 1) * scale, exact for integer observations (scale turns the recorded
unit into the base one: 1e-9 for ns -> seconds). Cumulative counts are right for any
subset of bounds, so a spec may export only some of them (MetricSpec.le_indexes).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import (
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
    Union,
)

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from runner.model.aggregates import Histogram, Key, Layout, Log2Layout
from runner.support.metric_names import (  # the names check, re-exported for callers
    MetricKind,
    MetricsError,
    validate_label_names,
    validate_metric_name,
)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed; counters end in _total
    help: str
    kind: MetricKind
    labels: Tuple[str, ...] = ()  # from the map's key fields, decoded
    scale: float = 1.0  # recorded unit -> base unit: 1e-9 for ns -> seconds
    layout: Layout = field(default_factory=Log2Layout)  # histograms only
    # Histograms: bucket indexes whose upper bound becomes an `le`; None: from the first
    # bucket that cannot be negative to the last bounded one.
    le_indexes: Optional[Tuple[int, ...]] = None
    # Label sets kept (the first seen); samples of others are dropped and counted.
    max_label_sets: int = 10_000

    def __post_init__(self) -> None:
        validate_metric_name(self.name, self.kind)
        validate_label_names(self.labels, self.kind)
        if self.max_label_sets < 1:
            raise MetricsError(f"metric {self.name!r}: max_label_sets must be at least 1, "
                               f"got {self.max_label_sets}")
        if not self.help.strip():
            raise MetricsError(f"metric {self.name!r} needs help text")
        if not self.scale > 0:
            raise MetricsError(f"metric {self.name!r}: scale must be positive, got {self.scale}")
        if self.le_indexes is not None:
            if list(self.le_indexes) != sorted(set(self.le_indexes)):
                raise MetricsError(f"metric {self.name!r}: le_indexes must be increasing")
            for i in self.le_indexes:
                if not 0 <= i < self.layout.size or self.layout.bounds(i)[1] is None:
                    raise MetricsError(f"metric {self.name!r}: no bounded bucket {i}")

    def bound_indexes(self) -> Tuple[int, ...]:
        if self.le_indexes is not None:
            return self.le_indexes
        # Bucket 0 (below zero, or below min) would give a negative first `le`, and then
        # prometheus-client leaves out _count and _sum. Values below land in the first
        # bound exported anyway: cumulative counts include them.
        first = 1 if isinstance(self.layout, Log2Layout) else 0
        return tuple(
            i for i in range(first, self.layout.size) if self.layout.bounds(i)[1] is not None
        )


@dataclass(frozen=True)
class Sample:
    labels: Tuple[str, ...]
    value: float  # in the recorded unit; the spec's scale applies


@dataclass(frozen=True)
class HistogramSample:
    labels: Tuple[str, ...]
    histogram: Histogram


@dataclass(frozen=True)
class FamilySnapshot:
    name: str  # a declared MetricSpec's name
    samples: Tuple[Union[Sample, HistogramSample], ...]
    # Label sets the read left out for the metric's limit, unread: counted as dropped (a
    # histogram's map entries, a bucket or a sum each: runtime/metrics.py).
    unread: int = 0


ReadMetrics = Callable[[], Iterable[FamilySnapshot]]


def snapshot(
    spec: MetricSpec, values: Mapping[Key, Union[int, float, Histogram]]
) -> FamilySnapshot:
    """A map's contents as one metric's snapshot: each key's parts, decoded already
    (runner.kinds.decoders), become the label values in the order of spec.labels."""
    samples: List[Union[Sample, HistogramSample]] = []
    for key, value in values.items():
        if len(key) != len(spec.labels):
            raise MetricsError(
                f"metric {spec.name!r}: key {key!r} for labels {', '.join(spec.labels) or '()'}"
            )
        labels = tuple(str(part) for part in key)
        if isinstance(value, Histogram):
            samples.append(HistogramSample(labels, value))
        else:
            samples.append(Sample(labels, value))
    return FamilySnapshot(spec.name, tuple(samples))


def cumulative_buckets(spec: MetricSpec, hist: Histogram) -> List[Tuple[str, float]]:
    """(le, cumulative count) pairs ending with +Inf, as HistogramMetricFamily takes them."""
    if hist.layout != spec.layout:
        raise MetricsError(f"metric {spec.name!r}: a histogram of another layout")
    out: List[Tuple[str, float]] = []
    running = 0
    counts = hist.counts
    done = 0
    for index in spec.bound_indexes():
        running += sum(counts[done : index + 1])
        done = index + 1
        upper = spec.layout.bounds(index)[1]
        assert upper is not None  # bound_indexes holds bounded buckets only
        out.append((_le(upper - 1, spec.scale), float(running)))
    out.append(("+Inf", float(hist.total)))
    return out


def _le(bound: int, scale: float) -> str:
    # floatToGoString, as prometheus-client writes `le` for its own histograms: 1.0, 1e-09.
    return floatToGoString(scaled(bound, scale))


def scaled(value: float, scale: float) -> float:
    """value * scale rounded once, from the decimals as written: 15 ns is 1.5e-08 s, where
    the float product would be 1.5000000000000002e-08."""
    if scale == 1.0:
        return float(value)
    return float(Decimal(repr(value)) * Decimal(repr(scale)))


class SpecCollector(Collector):
    """One spec's maps. Each metric keeps at most its own `max_label_sets` label sets: the
    first ones seen stay while they are there (a series does not flap from scrape to
    scrape); samples of others are dropped and counted in `dropped`, per metric."""

    def __init__(self, spec: str, declared: Iterable[MetricSpec], read: ReadMetrics,
                 spec_label: bool = False):
        self.spec = spec
        # serve: every sample also carries spec="NAME", first (one process, many specs).
        self.extra: Tuple[str, ...] = ("spec",) if spec_label else ()
        self.declared: Dict[str, MetricSpec] = {}
        for metric in declared:
            if metric.name in self.declared:
                raise MetricsError(f"metric {metric.name!r} declared twice")
            self.declared[metric.name] = metric
        self.read = read
        self.dropped: Dict[str, int] = {name: 0 for name in self.declared}
        self.read_errors = 0
        self.last_error: Optional[BaseException] = None
        self._admitted: Dict[str, Set[Tuple[str, ...]]] = {n: set() for n in self.declared}
        self._lock = threading.Lock()  # scrapes may overlap; the counts must not

    def describe(self) -> Iterator[Metric]:
        """Empty families of the declared names: the registry refuses a name two specs use."""
        for metric in self.declared.values():
            yield _family(metric, self.extra)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                snapshots = list(self.read())
            except Exception as error:
                # Raising here would fail the whole scrape, ebpf-run's own metrics too; the
                # error is counted and kept for the runtime to report.
                self.read_errors += 1
                self.last_error = error
                return
            families = [self._family_of(snapshot) for snapshot in snapshots]
        yield from families

    def _family_of(self, snapshot: FamilySnapshot) -> Metric:
        metric = self.declared.get(snapshot.name)
        if metric is None:
            raise MetricsError(f"snapshot of undeclared metric {snapshot.name!r}")
        family = _family(metric, self.extra)
        self.dropped[metric.name] += snapshot.unread
        admitted = self._admitted[metric.name]
        # A label set gone from the map (its key evicted) frees its place for another.
        admitted.intersection_update(s.labels for s in snapshot.samples)
        for sample in snapshot.samples:
            if len(sample.labels) != len(metric.labels):
                raise MetricsError(
                    f"metric {metric.name!r}: {len(sample.labels)} label values for "
                    f"{len(metric.labels)} labels"
                )
            if sample.labels not in admitted:
                if len(admitted) >= metric.max_label_sets:
                    self.dropped[metric.name] += 1
                    continue
                admitted.add(sample.labels)
            _add(family, metric, sample, (self.spec,) if self.extra else ())
        return family


def _family(metric: MetricSpec, extra: Tuple[str, ...] = ()) -> Metric:
    labels = [*extra, *metric.labels]
    if metric.kind == "counter":
        # CounterMetricFamily appends _total itself.
        return CounterMetricFamily(metric.name[: -len("_total")], metric.help, labels=labels)
    if metric.kind == "gauge":
        return GaugeMetricFamily(metric.name, metric.help, labels=labels)
    return HistogramMetricFamily(metric.name, metric.help, labels=labels)


def _add(family: Metric, metric: MetricSpec, sample: Union[Sample, HistogramSample],
         extra: Tuple[str, ...] = ()) -> None:
    labels = [*extra, *sample.labels]
    if isinstance(family, HistogramMetricFamily):
        if not isinstance(sample, HistogramSample):
            raise MetricsError(f"histogram {metric.name!r} got a plain sample")
        hist = sample.histogram
        total = None if hist.sum is None else scaled(hist.sum, metric.scale)
        family.add_metric(labels, cumulative_buckets(metric, hist), total)
        return
    if not isinstance(sample, Sample):
        raise MetricsError(f"{metric.kind} {metric.name!r} got a histogram sample")
    assert isinstance(family, (CounterMetricFamily, GaugeMetricFamily))
    family.add_metric(labels, scaled(sample.value, metric.scale))
