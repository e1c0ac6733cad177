"""The fleet test (issue 23): three "machines" on one kernel, each a network namespace of
ours (a veth pair to the root namespace, an address of its own) and a cgroup of ours; in
each an agent (`ebpf-run serve --cgroup`) serving two specs on the namespace's address, and
a workload of known size in the machine's cgroup. One real Prometheus (Debian's) scrapes
the three through a file_sd list with a `node` label; asserted through its HTTP query API:
each node's counts equal its workload (the cgroup filter keeps the nodes apart although
BPF sees the whole kernel), and sums across nodes equal the totals. Then one agent is
killed (SIGKILL) and restarted: Prometheus sees the target down and back, the kernel freed
the killed agent's programs, and the counter restarts from zero as an exporter's does
(Prometheus counts one reset; the new value is the second workload's exact count).

The agents enter only the namespace's network (nsenter --net), not `ip netns exec`: that
one also mounts a new /sys, hiding the cgroup, tracefs and bpf file systems under it.
Everything made (namespaces, veths, cgroups, processes) is named or held by this test and
removed in `finally`, also on a failure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from getppid import Generator
from harness import Run, loaded_programs
from test_cgroups import _empty_and_remove, _root
from test_metrics import PROMETHEUS, get, prometheus_server, wait_until
from test_serve import attached_by, serving

# host_only, as the other real-Prometheus tests: what it asserts is the same on every kernel
# (the cgroup filter itself runs in the VM through test_cgroups.py), and network namespaces,
# veths and a Prometheus server inside virtme-ng's guest were never tried.
pytestmark = [pytest.mark.host_only,
              pytest.mark.skipif(PROMETHEUS is None, reason="prometheus not installed")]

NSENTER = shutil.which("nsenter") or "nsenter"
NODES = ("n1", "n2", "n3")
PORT = 9435  # each node's own: every namespace has its own ports
# getppid() and openat() calls each node's workload makes, and n2's after its restart.
WORK = {"n1": (1100, 110), "n2": (2200, 220), "n3": (3300, 330)}
AGAIN = (700, 70)  # fewer than n2's first: Prometheus sees the counter go down, a reset

# It says when it has started (Python's start-up opens files: not the workload's) and waits.
WORKLOAD = ("import os, sys; print('waiting', flush=True); sys.stdin.readline(); "
            "[os.getppid() for _ in range({ppid})]; "
            "[os.close(os.open('/dev/null', os.O_RDONLY)) for _ in range({openat})]")


class Workload(Generator):
    """getppid() and openat() calls in a known number, made once told to."""

    def __init__(self, calls: Tuple[int, int]):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKLOAD.format(ppid=calls[0], openat=calls[1])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"waiting\n"


SPEC = """\
name: fleet-{syscall}
aggregations:
  calls:
    kind: count
    key: {{cg: u64}}
    decode: {{cg: cgroup}}
    metric: {{name: fleet_{syscall}_calls_total, help: "{syscall}() calls by cgroup."}}
probes:
  enter:
    attach: {{tracepoint: "syscalls:sys_enter_{syscall}"}}
    do:
      - aggregate: {{map: calls, key: {{cg: cgroup}}}}
"""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=60)


def results(port: int, promql: str) -> List[Tuple[Dict[str, str], float]]:
    """Every series of an instant query: (labels, value); [] while Prometheus is not up."""
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(promql)}"
    try:
        found = json.loads(get(url))["data"]["result"]
    except OSError:
        return []
    return [(r["metric"], float(r["value"][1])) for r in found]


def holds(port: int, promql: str, value: float) -> bool:
    """Whether the query gives exactly one series, of this value."""
    got = results(port, promql)
    last_seen[promql] = got  # for the message of a wait that timed out
    return len(got) == 1 and got[0][1] == value


last_seen: Dict[str, object] = {}


def wait_holds(port: int, promql: str, value: float, timeout: float = 60) -> None:
    """Polled: a scrape that failed on a busy machine leaves a series stale (absent from
    an instant query) until the next one."""
    try:
        wait_until(lambda: holds(port, promql, value), timeout,
                   f"Prometheus to hold {value} for {promql}")
    except AssertionError as e:
        raise AssertionError(f"{e}; it holds {last_seen.get(promql)}") from None


def by(port: int, promql: str, label: str) -> Dict[str, float]:
    got = results(port, promql)
    last_seen[promql] = got
    return {labels[label]: value for labels, value in got}


def wait_by(port: int, promql: str, label: str, want: Dict[str, float]) -> None:
    """Polled as wait_holds: the query's series, by one label's value, are `want`."""
    try:
        wait_until(lambda: by(port, promql, label) == want, 60,
                   f"Prometheus to hold {want} for {promql}")
    except AssertionError as e:
        raise AssertionError(f"{e}; it holds {last_seen.get(promql)}") from None


class Fleet:
    """The namespaces, veths, cgroups and processes of one test, removed by their names."""

    def __init__(self, tag: str, net: int):
        self.tag = tag
        self.net = net  # the nodes' third octets: net, net+1, net+2 of 10.231.x.0/30
        self.root = _root()
        self.top = self.root / f"ebpf-run-fleet.{tag}"
        self.namespaces: List[str] = []
        self.links: List[str] = []
        self.cgroups: List[Path] = []
        self.agents: Dict[str, Run] = {}
        self.workloads: List[Workload] = []

    def ns(self, node: str) -> str:
        return f"erfleet-{self.tag}-{node}"

    def address(self, node: str, side: int) -> str:
        return f"10.231.{self.net + NODES.index(node)}.{side}"

    def cgroup(self, node: str) -> str:
        return f"/{self.top.name}/{node}"

    def make(self) -> None:
        self.top.mkdir()
        self.cgroups.append(self.top)
        for i, node in enumerate(NODES):
            ns, host, inner = self.ns(node), f"ef{self.tag}h{i}", f"ef{self.tag}n{i}"
            sh("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            sh("ip", "link", "add", host, "type", "veth", "peer", "name", inner, "netns", ns)
            self.links.append(host)
            sh("ip", "addr", "add", f"{self.address(node, 1)}/30", "dev", host)
            sh("ip", "link", "set", host, "up")
            sh("ip", "-n", ns, "addr", "add", f"{self.address(node, 2)}/30", "dev", inner)
            sh("ip", "-n", ns, "link", "set", inner, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            (self.top / node).mkdir()
            self.cgroups.append(self.top / node)

    def start_agent(self, node: str, specs: Path) -> Run:
        run = Run("serve", str(specs), "--metrics", f"{self.address(node, 2)}:{PORT}",
                  "--cgroup", self.cgroup(node),
                  prefix=[NSENTER, f"--net=/run/netns/{self.ns(node)}"])
        self.agents[node] = run
        return run

    def work(self, node: str, calls: Tuple[int, int]) -> None:
        """A workload of `calls` (getppid, openat) in the node's cgroup, moved there while it
        waits on stdin (its start-up done), run to its end."""
        gen = Workload(calls)
        self.workloads.append(gen)
        (self.top / node / "cgroup.procs").write_text(str(gen.pid))
        gen.go()

    def remove(self) -> None:
        for run in self.agents.values():
            if run.proc.poll() is None:
                run.proc.kill()
            run.proc.wait()
        for gen in self.workloads:
            gen.end()
        for path in reversed(self.cgroups):
            _empty_and_remove(path, self.root)
        for link in self.links:  # gone with its peer's namespace, unless that failed
            subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=60)
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)


def scrape_nodes(tmp_path: Path, fleet: Fleet) -> str:
    """The scrape job: the nodes from a file_sd list that labels each with its node."""
    (tmp_path / "nodes.json").write_text(json.dumps(
        [{"targets": [f"{fleet.address(n, 2)}:{PORT}"], "labels": {"node": n}} for n in NODES],
        indent=2))
    return f"  - job_name: fleet\n    file_sd_configs: [{{files: ['{tmp_path / 'nodes.json'}']}}]\n"


def programs_left(ids: set) -> set:
    return ids & {p["id"] for p in loaded_programs()}


def wait_freed(ids: set, what: str) -> None:
    wait_until(lambda: not programs_left(ids), 30, f"the kernel to free {what}'s programs "
               f"({sorted(ids)})")


def test_three_nodes_one_prometheus_a_killed_agent_restarted(tmp_path):
    tag = str(os.getpid() % 100000)
    fleet = Fleet(tag, 1 + 3 * (os.getpid() % 80))
    specs = tmp_path / "specs"
    specs.mkdir()
    for syscall in ("getppid", "openat"):
        (specs / f"{syscall}.yaml").write_text(SPEC.format(syscall=syscall))
    held: Dict[str, set] = {}
    try:
        fleet.make()
        for node in NODES:
            fleet.start_agent(node, specs)
        for node in NODES:
            serving(fleet.agents[node])
            held[node] = attached_by(fleet.agents[node].proc.pid)
            assert len(held[node]) == 2, (node, held[node])
        with prometheus_server(tmp_path, scrape_nodes(tmp_path, fleet)) as prom:
            # Every target up before the work: the counters' first samples are the counts.
            wait_holds(prom, 'sum(up{job="fleet"})', 3, 120)
            for node in NODES:
                fleet.work(node, WORK[node])
            for node in NODES:
                for syscall, n in zip(("getppid", "openat"), WORK[node]):
                    q = f'fleet_{syscall}_calls_total{{node="{node}"}}'
                    wait_holds(prom, q, n)
                    (labels, _), = results(prom, q)
                    assert (labels["cg"], labels["spec"], labels["instance"]) == (
                        fleet.cgroup(node), f"fleet-{syscall}",
                        f"{fleet.address(node, 2)}:{PORT}"), labels
            by_syscall = 'sum by (spec) ({__name__=~"fleet_.*_calls_total", job="fleet"})'
            wait_by(prom, by_syscall, "spec",
                    {"fleet-getppid": sum(w[0] for w in WORK.values()),
                     "fleet-openat": sum(w[1] for w in WORK.values())})
            print(get(f"http://127.0.0.1:{prom}/api/v1/query?query="  # docs/deploy.md shows it
                      f"{urllib.parse.quote(by_syscall)}"))

            # n2's agent killed: the kernel frees its programs as its descriptors close.
            killed = fleet.agents["n2"]
            killed.proc.kill()
            assert killed.finish() == -signal.SIGKILL
            wait_freed(held["n2"], "the killed agent")
            wait_holds(prom, 'up{node="n2"}', 0)
            wait_by(prom, 'up{job="fleet"}', "node", {"n1": 1, "n2": 0, "n3": 1})

            again = fleet.start_agent("n2", specs)
            serving(again)
            held["n2"] = attached_by(again.proc.pid)
            wait_holds(prom, 'up{node="n2"}', 1)
            fleet.work("n2", AGAIN)
            for syscall, n in zip(("getppid", "openat"), AGAIN):
                q = f'fleet_{syscall}_calls_total{{node="n2"}}'
                wait_holds(prom, q, n)  # from zero again
                # One reset in n2's series, none in the others'.
                wait_by(prom, f"resets(fleet_{syscall}_calls_total[1h])", "node",
                        {"n1": 0, "n2": 1, "n3": 0})
            wait_by(prom, by_syscall, "spec",
                    {"fleet-getppid": WORK["n1"][0] + AGAIN[0] + WORK["n3"][0],
                     "fleet-openat": WORK["n1"][1] + AGAIN[1] + WORK["n3"][1]})
            for q in ("fleet_getppid_calls_total", "resets(fleet_getppid_calls_total[1h])",
                      "increase(fleet_getppid_calls_total[1h])", by_syscall):
                print(f"{q}: {results(prom, q)}")  # what docs/deploy.md shows

            # The end: every agent stops cleanly, its programs freed.
            for node in NODES:
                assert fleet.agents[node].stop(signal.SIGTERM) == 0, fleet.agents[node].err
            wait_freed(set().union(*held.values()), "the stopped agents")
    finally:
        fleet.remove()
    for node in NODES:
        err = "\n".join(fleet.agents[node].err)
        assert "Traceback" not in err and "serving 2 specs (0 failed)" in err, err

