"""ebpf-run's own metrics (RunnerCollector) and the registry /metrics serves (SpecRegistry):
one spec's collectors for a run, several for `ebpf-run serve`, added and removed while it
serves. The specs' own metrics are output/prometheus.py's SpecCollectors."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional, Set, Tuple

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runner.output.prometheus import MetricsError, SpecCollector


@dataclass(frozen=True)
class ProbeState:
    probe: str  # the probe's name in the spec
    attached: bool
    how: str  # what attached: "tracepoint:syscalls:sys_enter_read", "kprobe:__x64_sys_read"


@dataclass(frozen=True)
class RunnerStatus:
    received: Mapping[str, int]  # channel -> events
    lost: Mapping[Tuple[str, str], int]  # (channel, reason) -> events
    probes: Tuple[ProbeState, ...] = ()
    evicted: Mapping[str, int] = field(default_factory=dict)  # aggregation -> idle keys deleted


class RunnerCollector(Collector):
    """ebpf-run's own metrics for every spec added, one `spec` label apart. With
    `with_up` (serve), also ebpf_run_spec_up: 1 for a spec added, 0 for one marked down."""

    def __init__(self, with_up: bool = False) -> None:
        self._specs: Dict[str, Tuple[SpecCollector, Callable[[], RunnerStatus]]] = {}
        self._down: Set[str] = set()
        self.with_up = with_up

    def add(self, collector: SpecCollector, status: Callable[[], RunnerStatus]) -> None:
        if collector.spec in self._specs:
            raise MetricsError(f"spec {collector.spec!r} added twice")
        self._down.discard(collector.spec)
        self._specs = {**self._specs, collector.spec: (collector, status)}  # scrapes iterate

    def remove(self, spec: str) -> None:
        self._specs = {k: v for k, v in self._specs.items() if k != spec}

    def down(self, spec: str) -> None:
        self.remove(spec)
        self._down = self._down | {spec}

    def forget(self, spec: str) -> None:
        """Neither up nor down: a spec no longer served."""
        self.remove(spec)
        self._down = self._down - {spec}

    def collect(self) -> Iterator[Metric]:
        received, lost, attached, dropped, errors, evicted, up = self._families()
        for spec, (collector, status_of) in sorted(self._specs.items()):
            status = status_of()
            for channel, count in sorted(status.received.items()):
                received.add_metric([spec, channel], count)
            for (channel, reason), count in sorted(status.lost.items()):
                lost.add_metric([spec, channel, reason], count)
            for probe in status.probes:
                how = probe.how if probe.attached else "none"
                attached.add_metric([spec, probe.probe, how], 1 if probe.attached else 0)
            for metric, count in sorted(collector.dropped.items()):
                dropped.add_metric([spec, metric], count)
            errors.add_metric([spec], collector.read_errors)
            for aggregation, n in sorted(status.evicted.items()):
                evicted.add_metric([spec, aggregation], n)
        if up is not None:
            for spec in sorted({*self._specs, *self._down}):
                up.add_metric([spec], 0 if spec in self._down else 1)
        yield from (received, lost, attached, dropped, errors, evicted)
        if up is not None:
            yield up

    def describe(self) -> Iterator[Metric]:
        # Without it the registry would call collect(), and so every status callback,
        # at registration.
        *families, up = self._families()
        yield from families
        if up is not None:
            yield up

    def _families(self) -> Tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily,
                                 CounterMetricFamily, CounterMetricFamily, CounterMetricFamily,
                                 Optional[GaugeMetricFamily]]:
        received = CounterMetricFamily(
            "ebpf_run_events_received", "Events received from the kernel.",
            labels=["spec", "channel"],
        )  # fmt: skip
        lost = CounterMetricFamily(
            "ebpf_run_events_lost", "Events lost before user space read them.",
            labels=["spec", "channel", "reason"],
        )  # fmt: skip
        attached = GaugeMetricFamily(
            "ebpf_run_probe_attached", "1 if the probe attached (how: what attached), else 0.",
            labels=["spec", "probe", "how"],
        )  # fmt: skip
        dropped = CounterMetricFamily(
            "ebpf_run_metric_samples_dropped",
            "Samples not exported because their metric reached its label-set limit.",
            labels=["spec", "metric"],
        )
        errors = CounterMetricFamily(
            "ebpf_run_metric_read_errors", "Scrapes whose map read failed.", labels=["spec"]
        )
        evicted = CounterMetricFamily(
            "ebpf_run_aggregation_keys_evicted",
            "Keys deleted from an aggregation's map after an interval without a change.",
            labels=["spec", "aggregation"])
        up = GaugeMetricFamily(
            "ebpf_run_spec_up", "1 if the spec runs, 0 if it failed to check, load or attach.",
            labels=["spec"]) if self.with_up else None
        return received, lost, attached, dropped, errors, evicted, up


class SpecRegistry:
    """What /metrics serves: the specs' collectors, added and removed while it serves
    (serve's SIGHUP), and one RunnerCollector for them all, always exposed last."""

    def __init__(self, with_up: bool = False) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.runner = RunnerCollector(with_up)
        self.collectors: Dict[str, SpecCollector] = {}
        self._lock = threading.Lock()
        self.registry.register(self.runner)

    def add(self, collector: SpecCollector, status: Callable[[], RunnerStatus]) -> None:
        with self._lock:
            if collector.spec in self.collectors:
                raise MetricsError(f"spec {collector.spec!r} added twice")
            try:
                self.registry.register(collector)
            except ValueError as error:  # a metric name another spec already serves
                raise MetricsError(f"spec {collector.spec!r}: {error}") from error
            self.collectors[collector.spec] = collector
            self.runner.add(collector, status)
            self.registry.unregister(self.runner)  # its families after the specs' own
            self.registry.register(self.runner)

    def serving(self, metric: str) -> Optional[str]:
        """The spec that serves a metric of this name, if one does."""
        return next((c.spec for c in list(self.collectors.values()) if metric in c.declared),
                    None)

    def remove(self, spec: str, down: bool = False) -> None:
        """Stop serving a spec's metrics; `down`: still listed, as ebpf_run_spec_up 0."""
        with self._lock:
            collector = self.collectors.pop(spec, None)
            if collector is not None:
                self.registry.unregister(collector)
            if down:
                self.runner.down(spec)
            else:
                self.runner.forget(spec)


def registry_for(
    specs: Iterable[Tuple[SpecCollector, Callable[[], RunnerStatus]]],
) -> CollectorRegistry:
    """A registry of these specs' collectors and one RunnerCollector; no process or
    platform metrics, which are not ebpf-run's to report."""
    served = SpecRegistry()
    for collector, status in specs:
        served.add(collector, status)
    return served.registry
