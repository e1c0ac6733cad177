"""The aggregation tools of specs/tools, run for real."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys

import pytest
from getppid import Generator
from harness import SPECS, Run
from test_aggregations import traced

# host_only: the aggregation tools side by side with bpftrace; on the second kernel they run
# through their own cases (test_spec_tests.py).
pytestmark = pytest.mark.host_only

TOOLS = SPECS / "tools"

# Listens on HOST, connects to itself, prints both ports, closes: see connect_code().
_CONNECT = """\
import socket, sys
sys.stdin.readline()
listener = socket.socket(socket.AF_INET6 if ":" in HOST else socket.AF_INET)
listener.bind((HOST, 0))
listener.listen()
client = socket.create_connection(listener.getsockname()[:2])
server, _ = listener.accept()
print(client.getsockname()[1], listener.getsockname()[1], flush=True)
for s in (client, server, listener):
    s.close()
"""


def connect_code(host: str) -> str:
    return _CONNECT.replace("HOST", repr(host))


def _tcpstates(host: str):
    """(client port, listener port, the changes of that connection as (saddr, sport,
    daddr, dport, oldstate, newstate, family)) for one connection to itself on `host`."""
    code = connect_code(host)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        with Run(str(TOOLS / "tcpstates.yaml"), "--json") as run:
            run.wait_ready()
            out, _ = proc.communicate("go\n", timeout=60)
            client, listener = (int(p) for p in out.split())
            run.wait_output(lambda lines: sum(f'"sport": {client}' in ln for ln in lines) >= 3)
            assert run.stop(signal.SIGTERM) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    fields = ("saddr", "sport", "daddr", "dport", "oldstate", "newstate", "family")
    changes = [tuple(r["data"][f] for f in fields) for r in run.json()
               if r["type"] == "event" and listener in (r["data"]["sport"], r["data"]["dport"])]
    return client, listener, changes


def test_tcpstates_shows_syn_sent_then_established_with_the_ports():
    client, listener, changes = _tcpstates("127.0.0.1")
    lo = "127.0.0.1"
    client_side = [c for c in changes if c[3] == listener]
    assert client_side[:2] == [(lo, 0, lo, listener, "TCP_CLOSE", "TCP_SYN_SENT", 2),
                               (lo, client, lo, listener, "TCP_SYN_SENT", "TCP_ESTABLISHED", 2)]
    assert (lo, listener, lo, client, "TCP_SYN_RECV", "TCP_ESTABLISHED", 2) in changes


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) here")
def test_tcpstates_shows_ipv6_addresses_as_the_kernel_prints_them():
    client, listener, changes = _tcpstates("::1")
    client_side = [c for c in changes if c[3] == listener]
    assert client_side[:2] == [
        ("::1", 0, "::1", listener, "TCP_CLOSE", "TCP_SYN_SENT", 10),
        ("::1", client, "::1", listener, "TCP_SYN_SENT", "TCP_ESTABLISHED", 10)]


def test_runqlat_draws_a_histogram_of_microseconds():
    with Run(str(TOOLS / "runqlat.yaml"), "--json", "--duration", "1") as run:
        assert run.finish() == 0
    (hist,) = [r for r in run.json() if r["type"] == "hist"]
    assert (hist["map"], hist["unit"], hist["key"]) == ("usecs", "us", {})
    assert hist["count"] == sum(b["count"] for b in hist["buckets"]) > 0


def test_syscount_counts_getppid_among_the_top_10():
    n = 20_000  # far above any other process's getppid calls in a second
    gen = Generator(n)
    run = traced(str(TOOLS / "syscount.yaml"), gen, "--json")
    dumps = [r for r in run.json() if r.get("map") == "syscalls"]
    getppid = [r["value"] for r in dumps if r["key"]["syscall_name"] == "getppid"]
    assert sum(getppid) >= n  # clear: each dump holds what came since the previous one
    assert all(r["kind"] == "count" for r in dumps)
