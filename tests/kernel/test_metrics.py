"""--metrics for real: Debian's Prometheus scrapes ebpf-run, and the value it stores for a
known number of getppid calls equals ebpf-run's own dump; promtool accepts the exposition."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Iterator, List, Optional

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


@contextlib.contextmanager
def prometheus_server(tmp_path: Path, scrape_configs: str) -> Iterator[int]:
    """Debian's Prometheus on a free port of 127.0.0.1, storing in tmp_path, scraping every
    second (the YAML of `scrape_configs:`, indented by 2); its port. Stopped at the end."""
    assert PROMETHEUS is not None
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n{scrape_configs}")
    server = subprocess.Popen(
        [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
    ours = free_port()
    gen = Generator(N)
    scrape = f"  - job_name: ebpf_run\n    static_configs: [{{targets: ['127.0.0.1:{ours}']}}]\n"
    try:
        spec = write(tmp_path, COUNT_SPEC.format(pid=gen.pid))
        with prometheus_server(tmp_path, scrape) as theirs, \
                Run(spec, "--json", "--metrics", f"127.0.0.1:{ours}") as run:
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
    assert count_records(run)["getppid"]["value"] == scraped == N
    assert (lint.returncode, lint.stdout, lint.stderr) == (0, "", "")
    assert f'calls_total{{syscall="getppid"}} {float(N)}' in exposition
    assert ('ebpf_run_probe_attached{how="raw_tracepoint sys_enter",probe="enter",'
            'spec="count-by-syscall"} 1.0') in exposition


IDLE = 1000
FD_LIMIT = 512  # below IDLE: without the cap, the idle ones alone would exhaust them


def raise_own_fd_limit(need: int) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def test_a_thousand_idle_connections_neither_lock_out_scrapes_nor_break_the_stop(tmp_path):
    """1,000 connections that never send a request, to a run limited to 512 descriptors:
    they once exhausted them, every scrape then timed out, and SIGINT ended in a
    traceback. The oldest idle ones are closed for newcomers now."""
    import resource

    from harness import loaded_programs

    raise_own_fd_limit(IDLE + 256)
    gen = Generator(N)
    port = free_port()
    idle = []
    spec = write(tmp_path, COUNT_SPEC.format(pid=gen.pid))
    try:
        with Run(spec, "--json", "--metrics", f"127.0.0.1:{port}") as run:
            resource.prlimit(run.proc.pid, resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
            run.wait_ready()
            for _ in range(IDLE):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            gen.go()
            text = wait_until(lambda: (t := scrape(port)) and
                              f'calls_total{{syscall="getppid"}} {float(N)}' in t and t,
                              30, "a scrape with every getppid")
            assert 'ebpf_run_probe_attached{how="raw_tracepoint sys_enter"' in text
            for _ in range(3):  # and again, with the idle ones still open
                assert f'calls_total{{syscall="getppid"}} {float(N)}' in scrape(port)
            rc = run.stop(signal.SIGINT)
            pid = run.proc.pid
    finally:
        for s in idle:
            s.close()
        gen.end()
    assert rc == 0, run.err
    assert not [ln for ln in run.err if "Traceback" in ln or "Error" in ln], run.err
    assert any(r.get("type") == "summary" for r in run.json()) or \
        any("summary" in ln for ln in run.err), (run.out, run.err)
    assert count_records(run)["getppid"]["value"] == N
    held = [p for p in loaded_programs() if pid in [x.get("pid") for x in p.get("pids", [])]]
    assert held == []


def test_binding_beyond_loopback_is_said_loudly(tmp_path):
    port = free_port()
    spec = write(tmp_path, COUNT_SPEC.format(pid=1))
    with Run(spec, "--metrics", f"0.0.0.0:{port}") as run:
        run.wait_ready()
        assert run.stop() == 0
    assert (f"ebpf-run: WARNING: /metrics on 0.0.0.0:{port} is reachable beyond this "
            "machine, without TLS and basic auth: anyone who can connect reads what the probes "
            "see. Bind 127.0.0.1, or protect it with --metrics-web-config (docs/spec.md)"
            ) in run.err


def test_a_port_in_use_fails_before_anything_is_compiled_or_attached(tmp_path):
    spec = write(tmp_path, COUNT_SPEC.format(pid=1))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with Run(spec, "--metrics", f"127.0.0.1:{port}") as run:
            rc = run.finish()
    assert rc == 3
    assert run.err == [f"ebpf-run: error: cannot serve metrics on 127.0.0.1:{port}: Address "
                       "already in use; choose another --metrics HOST:PORT"]


KEYS = 1_000_000
EVENTS = 100_000
BIG_SPEC = """\
name: big-scrape
structs:
  ev:
    - pid: u32
maps:
  events: {{type: ringbuf, value: ev, pages: 64}}
aggregations:
  big:
    kind: count
    key: {{n: s64}}
    max_entries: 1100000
    at_exit: false
    metric: {{name: big_total, help: "getpgid calls by argument."}}
probes:
  fill:
    attach: {{tracepoint: "syscalls:sys_enter_getpgid"}}
    do:
      - if: "pid == {filler}"
        then:
          - aggregate: {{map: big, key: {{n: args.pid}}}}
  calls:
    attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
    do:
      - if: "pid == {gen}"
        then:
          - emit: {{to: events, set: {{pid: pid}}}}
"""
# 1,000,000 getpgid() calls of distinct arguments (no such processes: ESRCH at once).
FILL = ("import ctypes, sys; sys.stdin.readline(); g = ctypes.CDLL(None).getpgid\n"
        f"for i in range({KEYS}): g(10_000_000 + i)")
# getppid() in runs of 1,000 with a pause: a rate the run keeps up with without scrapes.
PACED = ("import os, sys, time; sys.stdin.readline()\n"
         f"for _ in range({EVENTS // 1000}):\n"
         "    [os.getppid() for _ in range(1000)]\n"
         "    time.sleep(0.02)")


def test_scraping_a_million_keys_loses_no_event(tmp_path):
    """A scrape read and decoded every key (18-25 s, 840 MB) while the run received events,
    and events were lost. Now it reads the 10,000 label sets it exports and counts the
    rest: every scrape exports them exactly and counts the others as dropped, and no event
    is lost. Each scrape has Prometheus' own default timeout, 10 s (scrape()): a scrape
    past it is a failed one to Prometheus. (This machine, busy: 50 s a scrape before, 3-6 s
    after for the first, which counts the keys, under 1 s for later ones; printed.)"""
    import threading

    from prometheus_client.utils import floatToGoString

    filler, gen = Generator(code=FILL), Generator(code=PACED)
    port = free_port()
    spec = write(tmp_path, BIG_SPEC.format(filler=filler.pid, gen=gen.pid))
    scrapes, took = [], []
    done = threading.Event()

    failed: List[str] = []

    def scraper():
        while not done.is_set():
            start = time.monotonic()
            try:
                scrapes.append(scrape(port))
            except OSError as error:  # past Prometheus' timeout, or refused
                failed.append(f"{error!r} after {time.monotonic() - start:.1f} s")
                return
            took.append(time.monotonic() - start)

    try:
        with Run(spec, "--json", "--metrics", f"127.0.0.1:{port}") as run:
            run.wait_ready()
            filler.go()
            thread = threading.Thread(target=scraper, daemon=True)
            thread.start()
            gen.go()
            done.set()
            thread.join(120)
            assert run.stop() == 0
    finally:
        filler.end()
        gen.end()
    print(f"\nmetrics: {len(scrapes)} scrapes of {KEYS} keys while {EVENTS} events came: "
          f"{max(took, default=0):.2f} s the longest")
    assert failed == [] and scrapes
    (summary,) = [r for r in run.json() if r.get("type") == "summary"]
    assert summary["channels"]["events"] == {"received": EVENTS, "lost": 0}
    for i, text in enumerate(scrapes, 1):
        exported = [ln for ln in text.splitlines() if ln.startswith("big_total{")]
        assert len(exported) == 10_000 and all(ln.endswith(" 1.0") for ln in exported)
        assert ('ebpf_run_metric_samples_dropped_total{metric="big_total",spec="big-scrape"} '
                f"{floatToGoString(i * (KEYS - 10_000))}") in text


HIST_KEYS = 200_000
HIST_SPEC = """\
name: hist-scrape
aggregations:
  sizes:
    kind: hist
    unit: bytes
    key: {{n: s64}}
    max_entries: 500000
    at_exit: false
    metric: {{name: sizes_bytes, help: "getpgid arguments by argument.", max_label_sets: 1000}}
probes:
  fill:
    attach: {{tracepoint: "syscalls:sys_enter_getpgid"}}
    do:
      - if: "pid == {filler}"
        then:
          - aggregate: {{map: sizes, key: {{n: args.pid}}, value: args.pid}}
"""
# getpgid(1) ... getpgid(200,000): each argument a key holding one value, itself.
HIST_FILL = ("import ctypes, sys; sys.stdin.readline(); g = ctypes.CDLL(None).getpgid\n"
             f"for i in range({HIST_KEYS}): g(1 + i)\nprint('done', flush=True)")


def test_scrapes_of_a_histogram_of_many_keys_export_exact_values(tmp_path):
    """A histogram's metric walked every (key, bucket) entry of its map at each scrape; it
    now looks up the buckets of the label sets it exports (1,000 here: 10,000 histograms
    are 660,000 lines of exposition, seconds of prometheus-client's own). Real scrapes: each
    exported key's count is 1, its sum itself, its one value in the bucket a walk puts it
    in, and the other keys' entries (a bucket and a sum each) are counted as dropped."""
    from prometheus_client.parser import text_string_to_metric_families

    filler = subprocess.Popen([sys.executable, "-c", HIST_FILL], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE)
    port = free_port()
    spec = write(tmp_path, HIST_SPEC.format(filler=filler.pid))
    try:
        with Run(spec, "--metrics", f"127.0.0.1:{port}") as run:
            run.wait_ready()
            assert filler.stdin is not None and filler.stdout is not None
            filler.stdin.write(b"go\n")
            filler.stdin.close()
            assert filler.stdout.readline() == b"done\n"
            texts, took = [], []
            for _ in range(3):
                start = time.monotonic()
                texts.append(scrape(port))
                took.append(time.monotonic() - start)
                time.sleep(1.1)  # past MIN_READ_INTERVAL_S: a read of its own
            assert run.stop() == 0
    finally:
        if filler.poll() is None:
            filler.kill()
        filler.wait()
    print(f"\nhistogram of {HIST_KEYS} keys, 1,000 exported: scrapes "
          f"{', '.join(f'{t:.2f}' for t in took)} s")
    for i, text in enumerate(texts, 1):
        families = {f.name: f for f in text_string_to_metric_families(text)}
        counts, sums, at = {}, {}, {}
        for sample in families["sizes_bytes"].samples:
            n = int(sample.labels["n"])
            if sample.name == "sizes_bytes_count":
                counts[n] = sample.value
            elif sample.name == "sizes_bytes_sum":
                sums[n] = sample.value
            elif sample.value == 1.0 and n not in at:  # the first cumulative bucket holding it
                at[n] = float(sample.labels["le"])
        assert len(counts) == 1000 and set(counts.values()) == {1.0}
        assert all(sums[n] == n for n in counts)
        # log2 buckets: n in [2**k, 2**(k+1)), so its le is 2**(k+1) - 1
        assert all(at[n] == (1 << n.bit_length()) - 1 for n in counts)
        (dropped,) = [x.value for x in families["ebpf_run_metric_samples_dropped"].samples
                      if x.labels["metric"] == "sizes_bytes"]
        assert dropped == i * 2 * (HIST_KEYS - 1000)


def test_tls_and_basic_auth_from_the_web_config_protect_a_run(tmp_path):
    """--metrics-web-config end to end: the run serves HTTPS, and only with the password."""
    import base64
    import ssl

    bcrypt = pytest.importorskip("bcrypt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp_path / "k.pem"), "-out", str(tmp_path / "c.pem")],
                   check=True, capture_output=True, timeout=60)
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
    (tmp_path / "web.yml").write_text("tls_server_config: {cert_file: c.pem, key_file: k.pem}\n"
                                      f"basic_auth_users: {{prom: '{hashed}'}}\n")
    gen = Generator(N)
    port = free_port()
    ctx = ssl.create_default_context(cafile=str(tmp_path / "c.pem"))
    url = f"https://127.0.0.1:{port}/metrics"
    good = {"Authorization": "Basic " + base64.b64encode(b"prom:pw").decode()}
    spec = write(tmp_path, COUNT_SPEC.format(pid=gen.pid))
    try:
        with Run(spec, "--metrics", f"127.0.0.1:{port}", "--metrics-web-config",
                 str(tmp_path / "web.yml")) as run:
            run.wait_ready()
            gen.go()
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(url, timeout=10, context=ctx)
            request = urllib.request.Request(url, headers=good)
            with urllib.request.urlopen(request, timeout=10, context=ctx) as reply:
                text = reply.read().decode()
            assert run.stop() == 0
    finally:
        gen.end()
    assert refused.value.code == 401
    assert f'calls_total{{syscall="getppid"}} {float(N)}' in text
