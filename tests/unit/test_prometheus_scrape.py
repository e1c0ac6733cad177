"""A real Prometheus server (Debian's /usr/bin/prometheus) scrapes ebpf-run's /metrics,
fed by fake map contents, and its HTTP API must answer what was served.

No BPF and no root: this is the exporter's contract with Prometheus, end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Dict, Tuple

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runner.output.prometheus import SpecCollector
from runner.output.prometheus_registry import registry_for
from runner.output.prometheus_server import MetricsServer

from .test_prometheus import LATENCY, OPEN, SYSCALLS, demo_read, status

pytestmark = pytest.mark.slow  # a real server's start-up and scrape interval: seconds

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DEADLINE = 60.0  # a hang guard, not a timing assertion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def query(base: str, promql: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    """Instant query -> {sorted labels without __name__ and job/instance: value}."""
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    answer = get_json(url)
    assert answer["status"] == "success", answer
    out = {}
    for series in answer["data"]["result"]:
        labels = {
            k: v for k, v in series["metric"].items() if k not in ("__name__", "job", "instance")
        }
        out[tuple(sorted(labels.items()))] = float(series["value"][1])
    return out


def served(text: str, sample_name: str) -> Dict[Tuple[Tuple[str, str], ...], float]:
    """What our exposition says for one sample name, keyed like query()."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == sample_name:
                out[tuple(sorted(sample.labels.items()))] = float(sample.value)
    return out


def wait_for(check, what: str, proc: subprocess.Popen):
    end = time.monotonic() + DEADLINE
    last: object = None
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited ({proc.returncode}) while waiting for {what}")
        try:
            result = check()
            if result:
                return result
            last = result
        except OSError as error:  # not listening yet
            last = error
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {DEADLINE:.0f} s; last: {last!r}")


def test_prometheus_scrapes_what_we_serve(tmp_path: Path):
    if not os.access(PROMETHEUS, os.X_OK):
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"CI is set and {PROMETHEUS} is missing; run ./scripts/setup")
        pytest.skip(f"{PROMETHEUS} not installed; run ./scripts/setup")

    collector = SpecCollector("demo", [SYSCALLS, LATENCY, OPEN], demo_read)
    registry = registry_for([(collector, status)])
    expected = generate_latest(registry).decode()

    with MetricsServer(registry, "127.0.0.1", 0) as server:
        prom_port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: ebpf-run\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{server.port}']\n"
        )
        log = (tmp_path / "prometheus.log").open("w")
        proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{prom_port}"
        try:
            wait_for(lambda: query(base, "up") == {(): 1.0}, "successful scrape", proc)

            got = wait_for(lambda: query(base, "syscalls_total"), "syscalls_total", proc)
            assert got == served(expected, "syscalls_total")
            assert got == {(("syscall", "read"),): 12.0, (("syscall", "write"),): 3.0}

            buckets = query(base, "read_latency_seconds_bucket")
            assert buckets == served(expected, "read_latency_seconds_bucket")
            assert buckets[(("comm", "sh"), ("le", "2.047e-06"))] == 7.0
            assert buckets[(("comm", "sh"), ("le", "+Inf"))] == 8.0
            assert query(base, "read_latency_seconds_sum") == {(("comm", "sh"),): 8.066e-06}
            assert query(base, "read_latency_seconds_count") == {(("comm", "sh"),): 8.0}

            assert query(base, "open_files") == {(): 4.0}
            lost = query(base, "ebpf_run_events_lost_total")
            assert lost == {(("channel", "events"), ("reason", "ring_full"), ("spec", "demo")): 2}
            attached = query(base, "ebpf_run_probe_attached")
            assert attached == served(expected, "ebpf_run_probe_attached")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
