"""Prometheus exposition of maps: exact text from prometheus-client, promtool's verdict,
name rules, the label-set limit, and the server on loopback."""

from __future__ import annotations

import shutil
import subprocess
import urllib.request
from dataclasses import replace
from typing import List

import pytest
from prometheus_client import generate_latest

from runner.errors import EnvironmentProblem, UsageError
from runner.model.aggregates import Histogram, LinearLayout, Log2Layout, histogram_of
from runner.output.prometheus import (
    FamilySnapshot,
    HistogramSample,
    MetricsError,
    MetricSpec,
    Sample,
    SpecCollector,
    cumulative_buckets,
    snapshot,
)
from runner.output.prometheus_registry import ProbeState, RunnerStatus, registry_for
from runner.output.prometheus_server import MetricsServer, parse_listen

SYSCALLS = MetricSpec("syscalls_total", "System calls by name.", "counter", ("syscall",))
LATENCY = MetricSpec(
    "read_latency_seconds", "read() latency.", "histogram", ("comm",), scale=1e-9,
    le_indexes=(1, 5, 10, 12),
)  # fmt: skip
OPEN = MetricSpec("open_files", "Open files.", "gauge")


def latency_hist() -> Histogram:
    values = [0, 5, 5, 9, 1000, 1023, 1024, 5000]
    hist = histogram_of(values, Log2Layout())
    return Histogram(hist.layout, hist.counts, sum=sum(values))


def status() -> RunnerStatus:
    return RunnerStatus(
        received={"events": 10},
        lost={("events", "ring_full"): 2},
        probes=(
            ProbeState("reads", True, "tracepoint:syscalls:sys_enter_read"),
            ProbeState("opens", False, ""),
        ),
    )


def demo_read():
    return [
        FamilySnapshot("syscalls_total", (Sample(("read",), 12), Sample(("write",), 3))),
        FamilySnapshot("read_latency_seconds", (HistogramSample(("sh",), latency_hist()),)),
        FamilySnapshot("open_files", (Sample((), 4),)),
    ]


def exposition(collector: SpecCollector) -> str:
    return generate_latest(registry_for([(collector, status)])).decode()


EXPECTED = """\
# HELP syscalls_total System calls by name.
# TYPE syscalls_total counter
syscalls_total{syscall="read"} 12.0
syscalls_total{syscall="write"} 3.0
# HELP read_latency_seconds read() latency.
# TYPE read_latency_seconds histogram
read_latency_seconds_bucket{comm="sh",le="0.0"} 1.0
read_latency_seconds_bucket{comm="sh",le="1.5e-08"} 4.0
read_latency_seconds_bucket{comm="sh",le="5.11e-07"} 4.0
read_latency_seconds_bucket{comm="sh",le="2.047e-06"} 7.0
read_latency_seconds_bucket{comm="sh",le="+Inf"} 8.0
read_latency_seconds_count{comm="sh"} 8.0
read_latency_seconds_sum{comm="sh"} 8.066e-06
# HELP open_files Open files.
# TYPE open_files gauge
open_files 4.0
# HELP ebpf_run_events_received_total Events received from the kernel.
# TYPE ebpf_run_events_received_total counter
ebpf_run_events_received_total{channel="events",spec="demo"} 10.0
# HELP ebpf_run_events_lost_total Events lost before user space read them.
# TYPE ebpf_run_events_lost_total counter
ebpf_run_events_lost_total{channel="events",reason="ring_full",spec="demo"} 2.0
# HELP ebpf_run_probe_attached 1 if the probe attached (how: what attached), else 0.
# TYPE ebpf_run_probe_attached gauge
ebpf_run_probe_attached{how="tracepoint:syscalls:sys_enter_read",probe="reads",spec="demo"} 1.0
ebpf_run_probe_attached{how="none",probe="opens",spec="demo"} 0.0
# HELP ebpf_run_metric_samples_dropped_total Samples not exported because their metric \
reached its label-set limit.
# TYPE ebpf_run_metric_samples_dropped_total counter
ebpf_run_metric_samples_dropped_total{metric="open_files",spec="demo"} 0.0
ebpf_run_metric_samples_dropped_total{metric="read_latency_seconds",spec="demo"} 0.0
ebpf_run_metric_samples_dropped_total{metric="syscalls_total",spec="demo"} 0.0
# HELP ebpf_run_metric_read_errors_total Scrapes whose map read failed.
# TYPE ebpf_run_metric_read_errors_total counter
ebpf_run_metric_read_errors_total{spec="demo"} 0.0
# HELP ebpf_run_aggregation_keys_evicted_total Keys deleted from an aggregation's map after \
an interval without a change.
# TYPE ebpf_run_aggregation_keys_evicted_total counter
"""


def test_exposition_text():
    assert exposition(SpecCollector("demo", [SYSCALLS, LATENCY, OPEN], demo_read)) == EXPECTED


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_exposition():
    text = exposition(SpecCollector("demo", [SYSCALLS, LATENCY, OPEN], demo_read))
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_default_log2_buckets_start_at_zero_and_keep_count_and_sum():
    spec = MetricSpec("size_bytes", "Sizes.", "histogram")
    buckets = cumulative_buckets(spec, histogram_of([-4, 0, 3, 100], Log2Layout()))
    # le=0 holds the negative value too: cumulative counts include every bucket below.
    assert buckets[:4] == [("0.0", 2.0), ("1.0", 2.0), ("3.0", 3.0), ("7.0", 3.0)]
    assert buckets[-2:] == [("9.223372036854776e+18", 4.0), ("+Inf", 4.0)]
    assert len(buckets) == 65  # indexes 1..64, then +Inf


def test_linear_buckets_end_in_inf():
    spec = MetricSpec("queue_depth", "Depth.", "histogram", layout=LinearLayout(0, 30, 10))
    buckets = cumulative_buckets(spec, histogram_of([-1, 5, 15, 15, 30, 99], spec.layout))
    assert buckets == [("-1.0", 1.0), ("9.0", 2.0), ("19.0", 4.0), ("29.0", 4.0), ("+Inf", 6.0)]


def test_histogram_without_sum_has_buckets_only():
    spec = MetricSpec("size_bytes", "Sizes.", "histogram", le_indexes=(3,))
    sample = HistogramSample((), histogram_of([2], spec.layout))
    collector = SpecCollector("s", [spec], lambda: [FamilySnapshot("size_bytes", (sample,))])
    text = exposition(collector).split("# HELP ebpf_run")[0]
    assert text == (
        "# HELP size_bytes Sizes.\n# TYPE size_bytes histogram\n"
        'size_bytes_bucket{le="3.0"} 1.0\nsize_bytes_bucket{le="+Inf"} 1.0\n'
    )


@pytest.mark.parametrize(
    "name,kind,message",
    [
        ("syscalls", "counter", "counter 'syscalls' must end in '_total'"),
        ("open_total", "gauge", "gauge 'open_total': '_total' is a suffix"),
        ("lat_bucket", "histogram", "'_bucket' is a suffix"),
        ("read:lat", "gauge", "use letters, digits and '_'"),
        ("9lives", "gauge", "use letters, digits and '_'"),
        ("__x", "gauge", "use letters, digits and '_'"),
        ("read_latency_ms", "histogram", "'ms' is not a base unit"),
        ("read_latency_microseconds", "histogram", "'microseconds' is not a base unit"),
        ("read_kilobytes_total", "counter", "'kilobytes' is not a base unit"),
        ("ebpf_run_mine", "gauge", "the prefix 'ebpf_run_' is ebpf-run's own"),
    ],
)
def test_metric_names_are_validated(name, kind, message):
    with pytest.raises(MetricsError, match=message):
        MetricSpec(name, "Help.", kind)


@pytest.mark.parametrize(
    "labels,kind,message",
    [
        (("le",), "histogram", "label 'le' is the bucket bound"),
        (("a", "a"), "gauge", "label 'a' appears twice"),
        (("bad-name",), "gauge", "label name 'bad-name'"),
        (("__name__",), "gauge", "label name '__name__'"),
    ],
)
def test_label_names_are_validated(labels, kind, message):
    with pytest.raises(MetricsError, match=message):
        MetricSpec("ok_value", "Help.", kind, labels)


def test_help_is_required_and_le_indexes_checked():
    with pytest.raises(MetricsError, match="needs help text"):
        MetricSpec("ok_value", " ", "gauge")
    with pytest.raises(MetricsError, match="'ok_total': max_label_sets must be at least 1"):
        MetricSpec("ok_total", "Help.", "counter", max_label_sets=0)
    with pytest.raises(MetricsError, match="scale must be positive, got 0"):
        MetricSpec("ok_value", "Help.", "gauge", scale=0)
    with pytest.raises(MetricsError, match="le_indexes must be increasing"):
        MetricSpec("ok_seconds", "Help.", "histogram", le_indexes=(5, 3))
    with pytest.raises(MetricsError, match="no bounded bucket 8"):
        MetricSpec("ok_seconds", "H.", "histogram", layout=LinearLayout(0, 5, 1), le_indexes=(8,))


def test_label_set_limit_keeps_the_first_and_counts_the_rest():
    scrapes: List[List[str]] = [["a", "b", "c"], ["c", "b", "d", "a"]]

    def read():
        names = scrapes.pop(0)
        return [FamilySnapshot("syscalls_total", tuple(Sample((n,), 1) for n in names))]

    collector = SpecCollector("demo", [replace(SYSCALLS, max_label_sets=2)], read)
    first = exposition(collector)
    assert 'syscalls_total{syscall="a"} 1.0\nsyscalls_total{syscall="b"} 1.0\n' in first
    assert 'ebpf_run_metric_samples_dropped_total{metric="syscalls_total",spec="demo"} 1.0' in first
    second = exposition(collector)
    assert 'syscall="c"' not in second and 'syscall="d"' not in second
    assert 'syscalls_total{syscall="b"} 1.0\nsyscalls_total{syscall="a"} 1.0\n' in second
    assert collector.dropped == {"syscalls_total": 3}
    scrapes.append(["c", "d", "b"])  # "a" is gone from the map: "c" takes its place
    third = exposition(collector)
    assert 'syscalls_total{syscall="b"} 1.0' in third and 'syscall="c"} 1.0' in third
    assert 'syscall="d"' not in third and collector.dropped == {"syscalls_total": 4}


def test_each_metric_has_its_own_label_set_limit():
    calls = MetricSpec("calls_total", "C.", "counter", ("n",), max_label_sets=1)
    opens = MetricSpec("opens_total", "O.", "counter", ("n",), max_label_sets=3)

    def read():
        return [FamilySnapshot(m, tuple(Sample((n,), 1) for n in "abcde"))
                for m in ("calls_total", "opens_total")]

    collector = SpecCollector("demo", [calls, opens], read)
    text = exposition(collector)
    assert text.count("calls_total{n=") == 1 and text.count("opens_total{n=") == 3
    assert collector.dropped == {"calls_total": 4, "opens_total": 2}
    for metric, count in (("calls_total", 4), ("opens_total", 2)):
        assert (f'ebpf_run_metric_samples_dropped_total{{metric="{metric}",spec="demo"}} '
                f'{count}.0') in text


def test_a_failing_read_is_counted_and_own_metrics_still_served():
    def read():
        raise OSError("map gone")

    collector = SpecCollector("demo", [SYSCALLS], read)
    text = exposition(collector)
    assert "syscalls_total{" not in text
    assert 'ebpf_run_metric_read_errors_total{spec="demo"} 1.0' in text
    assert isinstance(collector.last_error, OSError)


def test_snapshot_mismatches_are_loud():
    collector = SpecCollector("demo", [SYSCALLS], lambda: [FamilySnapshot("nope_total", ())])
    with pytest.raises(MetricsError, match="undeclared metric 'nope_total'"):
        exposition(collector)
    wrong = SpecCollector(
        "demo", [SYSCALLS], lambda: [FamilySnapshot("syscalls_total", (Sample((), 1),))]
    )
    with pytest.raises(MetricsError, match="0 label values for 1 labels"):
        exposition(wrong)


def test_two_specs_in_one_process_and_name_clashes():
    one = SpecCollector("one", [SYSCALLS], lambda: [])
    two = SpecCollector("two", [OPEN], lambda: [])
    text = generate_latest(registry_for([(one, status), (two, status)])).decode()
    assert 'ebpf_run_events_received_total{channel="events",spec="one"} 10.0' in text
    assert 'ebpf_run_events_received_total{channel="events",spec="two"} 10.0' in text
    clash = SpecCollector("three", [SYSCALLS], lambda: [])
    with pytest.raises(MetricsError, match="spec 'three': Duplicated timeseries"):
        registry_for([(one, status), (clash, status)])
    with pytest.raises(MetricsError, match="declared twice"):
        SpecCollector("x", [SYSCALLS, SYSCALLS], lambda: [])


def test_parse_listen():
    assert parse_listen("127.0.0.1:9435") == ("127.0.0.1", 9435)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:80") == ("localhost", 80)
    for bad in ("9435", ":9435", "host:", "host:99999", "host:x"):
        with pytest.raises(UsageError, match="expected HOST:PORT"):
            parse_listen(bad)


def test_server_serves_and_stops():
    registry = registry_for([(SpecCollector("demo", [SYSCALLS, LATENCY, OPEN], demo_read), status)])
    with MetricsServer(registry, "127.0.0.1", 0) as server:
        port, thread = server.port, server._thread
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as reply:
            assert reply.read().decode() == EXPECTED
    # Stopped: its listening socket is closed and its thread gone. (A connect to the freed
    # port is no test: a connect from the ephemeral range can pick that very port as its
    # source and connect to itself, as happened here after many connections.)
    assert server.listener is not None and server.listener.server.socket.fileno() == -1
    assert thread is not None and not thread.is_alive()


def test_server_port_in_use_says_what_to_do():
    registry = registry_for([])
    first = MetricsServer(registry, "127.0.0.1", 0).start()
    try:
        with pytest.raises(EnvironmentProblem, match="choose another --metrics HOST:PORT"):
            MetricsServer(registry, "127.0.0.1", first.port).start()
    finally:
        first.stop()


def test_port_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="not running"):
        _ = MetricsServer(registry_for([]), "127.0.0.1", 0).port


def test_registration_reads_nothing():
    calls: List[str] = []

    def read():
        calls.append("read")
        return []

    def status_now() -> RunnerStatus:
        calls.append("status")
        return status()

    registry = registry_for([(SpecCollector("demo", [SYSCALLS], read), status_now)])
    assert calls == []
    generate_latest(registry)
    assert calls == ["read", "status"]


def test_snapshot_from_map_contents():
    hist = latency_hist()
    assert snapshot(SYSCALLS, {("read",): 12, ("write",): 3}) == FamilySnapshot(
        "syscalls_total", (Sample(("read",), 12), Sample(("write",), 3))
    )
    assert snapshot(LATENCY, {("sh",): hist}) == FamilySnapshot(
        "read_latency_seconds", (HistogramSample(("sh",), hist),)
    )
    assert snapshot(OPEN, {(): 4}) == FamilySnapshot("open_files", (Sample((), 4),))
    with pytest.raises(MetricsError, match=r"key \('read', 1\) for labels syscall"):
        snapshot(SYSCALLS, {("read", 1): 1})
