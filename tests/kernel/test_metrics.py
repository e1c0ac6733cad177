"""--metrics for real: Debian's Prometheus scrapes ebpf-run, and the value it stores for a
known number of getppid calls equals ebpf-run's own dump; promtool accepts the exposition."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Optional

import pytest
from getppid import Generator
from harness import SLOW, Run
from test_aggregations import COUNT_SPEC, count_records, write

# host_only: a real Prometheus server scraping: the exposition is the same on every kernel.
pytestmark = pytest.mark.host_only

N = 3000
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def query(port: int, promql: str) -> Optional[float]:
    """The instant value of promql in Prometheus, None while it has no sample."""
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}"
    try:
        result = json.loads(get(url))["data"]["result"]
    except OSError:  # not listening yet
        return None
    return float(result[0]["value"][1]) if result else None


def wait_until(predicate, timeout: float, what: str):
    end = time.monotonic() + timeout * SLOW
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(PROMETHEUS is None or PROMTOOL is None, reason="prometheus not installed")
def test_prometheus_scrapes_the_count_ebpf_run_dumps(tmp_path):
    assert PROMETHEUS is not None and PROMTOOL is not None
    ours, theirs = free_port(), free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: ebpf_run\n    static_configs: [{{targets: ['127.0.0.1:{ours}']}}]\n")
    gen = Generator(N)
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{theirs}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        spec = write(tmp_path, COUNT_SPEC.format(pid=gen.pid))
        with Run(spec, "--json", "--metrics", f"127.0.0.1:{ours}") as run:
            run.wait_ready()
            gen.go()
            promql = 'calls_total{syscall="getppid",job="ebpf_run"}'
            scraped = wait_until(lambda: query(theirs, promql) == N and N, 60,
                                 f"Prometheus to hold {N} for {promql}")
            exposition = get(f"http://127.0.0.1:{ours}/metrics")
            lint = subprocess.run([PROMTOOL, "check", "metrics"], input=exposition,
                                  capture_output=True, text=True, timeout=60)
            assert run.stop(signal.SIGTERM) == 0
    finally:
        gen.end()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert count_records(run)["getppid"]["value"] == scraped == N
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")
    assert f'calls_total{{syscall="getppid"}} {float(N)}' in exposition
    assert ('ebpf_run_probe_attached{how="raw_tracepoint sys_enter",probe="enter",'
            'spec="count-by-syscall"} 1.0') in exposition
