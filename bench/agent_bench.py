"""One agent with 10 specs against 10 single-spec processes, and a scrape of 10,000 label sets.

    sudo .venv/bin/python bench/agent_bench.py [--rounds 2] [--seconds 10] [--rate 100k]
                                               [--scrapes 7] [--json FILE]

The same 10 metric-exporting specs run two ways: `ebpf-run serve DIR --metrics
127.0.0.1:PORT` (one process), and `ebpf-run SPEC --metrics 127.0.0.1:PORTi` for each (ten
processes). The specs are the shipped tools with a `metric:` (drops, readbytes, readlat,
runqlat, syscount, syscount-process) and four small ones of this bench's (getppid calls by
command and by uid, getppid latency, openat calls by command), written to a temporary
directory. An unmeasured agent first fills the compile cache (a spec compiled in the process
leaves clang's pages in it: 350 MiB of RSS instead of 110 here); then each setup, once every
process said it is ready (and 2 s more):

- at rest: CPU (user + system, /proc/PID/stat, summed over the setup's processes) over
  `--seconds` with nothing of ours running, then RSS (VmRSS, summed);
- under load: bench/loadgen (built and run by bench/harness.py: uid 4242, pinned to CPU 1)
  makes `--rate` getppid() calls a second for `--seconds`, and a small Python loop 2,000
  openat() a second meanwhile; CPU from the load's start to 1 s after its end, then RSS.

The setups alternate order from round to round; figures are medians of rounds.

Scrape: an agent serving the same 10 specs plus `big-scrape`, a count aggregation keyed by
getpgid()'s argument (as tests/kernel/test_metrics.py's BIG_SPEC) with `max_label_sets:
10000`, filled by this bench with 10,000 getpgid() calls of distinct arguments (pids that
cannot exist). Three scrapes before the fill give what the rest of the exposition costs. After one
scrape that walks the map, `--scrapes` scrapes of its /metrics are timed, 1.1 s apart: the
agent answers a scrape less than a second after its previous read from that read, so each
timed one reads every map again. Each must hold exactly 10,000 `big_total` samples.

The line before the last: `agent: specs=10 rss=<MiB> scrape-10k=<ms> cpu-vs-10-processes=<x>`
(rss: the agent's after the load; cpu: the agent's CPU under load over the ten processes'
sum). The last line says whether the targets are met: the scrape under 100 ms, the ratio
under 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import harness

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "specs" / "tools"
SHIPPED = ("drops", "readbytes", "readlat", "runqlat", "syscount", "syscount-process")
EBPF_RUN = [sys.executable, "-m", "runner"]  # from ROOT: this tree's runner
TICK = os.sysconf("SC_CLK_TCK")
SETTLE_S = 2.0  # after ready: the first ticks and dumps of the specs done
AFTER_LOAD_S = 1.0  # the CPU window goes on this long after the load: the reads of it
SCRAPE_GAP_S = 1.1  # past the agent's 1 s read cache: each timed scrape reads the maps
OPENAT_RATE = 2000
KEYS = 10_000
# getpgid() of pids that cannot exist (pid_max is at most 2^22): ESRCH at once. Counted by
# argument alone, so the spec's text (and its cached compile) is the same in every run;
# tests/kernel/test_metrics.py uses 10,000,000 up.
KEY_BASE = 30_000_000

COUNT = """\
name: {name}
aggregations:
  calls:
    kind: count
    key: {{{label}: "{type}"}}
    metric: {{name: {metric}, help: "{syscall}() calls by {label}."}}
probes:
  enter:
    attach: {{syscall: {syscall}}}
    do:
      - aggregate: {{map: calls, key: {{{label}: {label}}}}}
"""

OWN = {
    "getppid-comm": COUNT.format(name="getppid-comm", syscall="getppid", label="comm",
                                 type="char[16]", metric="getppid_calls_total"),
    "getppid-uid": COUNT.format(name="getppid-uid", syscall="getppid", label="uid",
                                type="u32", metric="getppid_calls_by_uid_total"),
    "getppid-latency": """\
name: getppid-latency
maps:
  started: {type: hash, key: u32, value: u64, max_entries: 65536}
aggregations:
  nsecs:
    kind: hist
    unit: ns
    metric: {name: getppid_latency_seconds, help: "Time getppid() calls took."}
probes:
  enter:
    attach: {syscall: getppid}
    do:
      - store: {map: started, key: tid, value: ktime}
  exit:
    attach: {syscall_exit: getppid}
    do:
      - aggregate: {map: nsecs, elapsed: {map: started, key: tid}}
""",
    "openat-comm": COUNT.format(name="openat-comm", syscall="openat", label="comm",
                                type="char[16]", metric="openat_calls_total"),
}

BIG = f"""\
name: big-scrape
aggregations:
  big:
    kind: count
    key: {{n: s64}}
    max_entries: 20000
    at_exit: false
    metric: {{name: big_total, help: "getpgid() calls by argument.", max_label_sets: {KEYS}}}
probes:
  fill:
    attach: {{syscall: getpgid}}
    do:
      - if: "args.pid >= {KEY_BASE} && args.pid < {KEY_BASE + KEYS}"
        then:
          - aggregate: {{map: big, key: {{n: args.pid}}}}
"""

OPENAT_LOOP = ("import os, sys, time\n"
               "rate, seconds = float(sys.argv[1]), float(sys.argv[2])\n"
               "start = time.monotonic(); n = 0\n"
               "while time.monotonic() - start < seconds:\n"
               "    due = int((time.monotonic() - start) * rate)\n"
               "    while n < due:\n"
               "        os.close(os.open('/dev/null', os.O_RDONLY)); n += 1\n"
               "    time.sleep(0.002)\n"
               "print(n)\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """User + system time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime: fields 14 and 15


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Proc:
    """One ebpf-run process: stdout to /dev/null, stderr to a file searched for `ready`."""

    def __init__(self, argv: List[str], ready: str, log: Path):
        self.ready, self.log = ready, log
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err,
                                         env=harness.child_env(), start_new_session=True)

    def is_ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.proc.args} exited ({self.proc.returncode}):\n"
                               + self.log.read_text()[-2000:])
        return self.ready in self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def wait(self) -> None:
        try:
            self.proc.wait(harness.STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start(procs: List[Proc]) -> float:
    """Seconds until every one of them said it is ready."""
    begun = time.monotonic()
    pending = list(procs)
    while pending:
        if time.monotonic() - begun > harness.READY_TIMEOUT * 2:
            raise RuntimeError("not ready: " + ", ".join(str(p.proc.args) for p in pending))
        pending = [p for p in pending if not p.is_ready()]
        time.sleep(0.05)
    return time.monotonic() - begun


def stop(procs: List[Proc]) -> None:
    for p in procs:
        p.stop()
    for p in procs:
        p.wait()


def write_specs(work: Path) -> Dict[str, Path]:
    """The 10 specs, each a file of its own in work/agent/ (the agent's directory), and
    work/big-scrape.yaml."""
    agent = work / "agent"
    agent.mkdir()
    paths = {}
    for name in SHIPPED:
        paths[name] = agent / f"{name}.yaml"
        paths[name].write_bytes((TOOLS / f"{name}.yaml").read_bytes())
    for name, text in OWN.items():
        paths[name] = agent / f"{name}.yaml"
        paths[name].write_text(text)
    (work / "big-scrape.yaml").write_text(BIG)
    return paths


def agent(work: Path, specs: int, port: int, big: bool = False) -> Proc:
    """`serve` of work/agent/, and of work/big-scrape.yaml too if `big`. (The render cache
    is keyed by a spec's path too: the same paths in every setup, so all are cached.)"""
    args = [str(work / "agent"), *([str(work / "big-scrape.yaml")] if big else [])]
    return Proc([*EBPF_RUN, "serve", *args, "--metrics", f"127.0.0.1:{port}"],
                f"serving {specs + big} specs (0 failed)",
                work / f"agent{'-big' if big else ''}.err")


def launch(setup: str, paths: Dict[str, Path], work: Path) -> List[Proc]:
    if setup == "agent":
        return [agent(work, len(paths), free_port())]
    return [Proc([*EBPF_RUN, str(path), "--metrics", f"127.0.0.1:{free_port()}"],
                 "ebpf-run: ready", work / f"{name}.err") for name, path in paths.items()]


def load(rate: float, seconds: float) -> int:
    """The getppid() generator and the openat() loop side by side; the calls made."""
    opens = subprocess.Popen([sys.executable, "-c", OPENAT_LOOP, str(OPENAT_RATE),
                              str(seconds)], stdout=subprocess.PIPE)
    try:
        calls, _, _, _ = harness.loadgen(rate, seconds)
    finally:
        opens.communicate(timeout=seconds + 30)
    return calls


def measure_setup(setup: str, paths: Dict[str, Path], work: Path, rate: float,
                  seconds: float) -> Dict[str, float]:
    procs = launch(setup, paths, work)
    try:
        ready = start(procs)
        time.sleep(SETTLE_S)
        pids = [p.proc.pid for p in procs]

        def cpu() -> float:
            return sum(cpu_s(pid) for pid in pids)

        def rss() -> float:
            return sum(rss_mib(pid) for pid in pids)

        before = cpu()
        time.sleep(seconds)
        rest_cpu, rest_rss = cpu() - before, rss()
        before = cpu()
        calls = load(rate, seconds)
        time.sleep(AFTER_LOAD_S)
        load_cpu, load_rss = cpu() - before, rss()
    finally:
        stop(procs)
    return {"ready_s": ready, "rest_cpu_s": rest_cpu, "rest_rss_mib": rest_rss,
            "load_cpu_s": load_cpu, "load_rss_mib": load_rss, "calls": calls}


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read().decode()


def measure_scrape(paths: Dict[str, Path], work: Path, n: int) -> Dict[str, object]:
    """The agent with the 10 specs and big-scrape, its map filled with 10,000 keys."""
    port = free_port()
    served = agent(work, len(paths), port, big=True)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        start([served])
        time.sleep(SETTLE_S)
        empty: List[float] = []  # the 11 specs, big-scrape's map empty: the rest's share
        for _ in range(3):
            time.sleep(SCRAPE_GAP_S)
            t0 = time.monotonic()
            scrape(url)
            empty.append(time.monotonic() - t0)
        for i in range(KEYS):
            with contextlib.suppress(ProcessLookupError):  # no such process
                os.getpgid(KEY_BASE + i)
        time.sleep(SCRAPE_GAP_S)
        t0 = time.monotonic()
        first = scrape(url)
        first_s = time.monotonic() - t0
        took: List[float] = []
        sizes = []
        for _ in range(n):
            time.sleep(SCRAPE_GAP_S)
            t0 = time.monotonic()
            text = scrape(url)
            took.append(time.monotonic() - t0)
            samples = sum(ln.startswith("big_total{") for ln in text.splitlines())
            if samples != KEYS:
                raise RuntimeError(f"a scrape held {samples} big_total samples, not {KEYS}")
            sizes.append(len(text))
        rss = rss_mib(served.proc.pid)
    finally:
        stop([served])
    return {"first_s": first_s, "first_samples": sum(
        ln.startswith("big_total{") for ln in first.splitlines()),
        "scrapes_s": took, "empty_s": empty, "bytes": statistics.median(sizes),
        "rss_mib": rss}


def measure(rounds: int, rate: float, seconds: float, scrapes: int) -> dict:
    harness.build_loadgen()
    results: dict = {"agent": [], "processes": []}
    with tempfile.TemporaryDirectory(prefix="er-agent-") as tmp:
        work = Path(tmp)
        paths = write_specs(work)
        # Unmeasured: a first run compiles the specs not in the cache yet (in the process,
        # which then holds clang's pages: 350 MiB instead of 110 here).
        warm = agent(work, len(paths), free_port(), big=True)
        try:
            start([warm])
        finally:
            stop([warm])
        for r in range(rounds):
            order = ["agent", "processes"] if r % 2 == 0 else ["processes", "agent"]
            for setup in order:
                row = measure_setup(setup, paths, work, rate, seconds)
                results[setup].append(row)
                print(f"round {r + 1}: {setup}: ready {row['ready_s']:.1f} s, CPU at rest "
                      f"{row['rest_cpu_s']:.2f} s, under load {row['load_cpu_s']:.2f} s "
                      f"({row['calls']:,} getppid), RSS {row['rest_rss_mib']:.0f} / "
                      f"{row['load_rss_mib']:.0f} MiB", file=sys.stderr)
        results["scrape"] = measure_scrape(paths, work, scrapes)
        print(f"scrape: first {results['scrape']['first_s'] * 1000:.0f} ms, then "
              + ", ".join(f"{s * 1000:.0f}" for s in results["scrape"]["scrapes_s"]) + " ms",
              file=sys.stderr)
    results.update(rate=rate, seconds=seconds, specs=list(paths))
    return results


def med(rows: List[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def report(res: dict) -> List[str]:
    seconds = res["seconds"]
    lines = [f"the 10 specs: {', '.join(res['specs'])}",
             f"{'setup':<28} {'ready':>7} {'CPU at rest':>12} {'CPU under load':>15} "
             f"{'RSS at rest':>12} {'RSS loaded':>11}"]
    for setup, label in (("agent", "agent (1 process)"), ("processes", "10 processes (sum)")):
        rows = res[setup]
        lines.append(
            f"{label:<28} {med(rows, 'ready_s'):>5.1f} s "
            f"{med(rows, 'rest_cpu_s') / seconds * 100:>10.1f} % "
            f"{med(rows, 'load_cpu_s') / (seconds + AFTER_LOAD_S) * 100:>13.1f} % "
            f"{med(rows, 'rest_rss_mib'):>8.0f} MiB {med(rows, 'load_rss_mib'):>7.0f} MiB")
    lines.append(f"(CPU: % of one CPU, user + system; at rest over {seconds:g} s, under load "
                 f"{res['rate'] / 1000:g}k getppid/s and {OPENAT_RATE} openat/s for "
                 f"{seconds:g} s, plus {AFTER_LOAD_S:g} s)")
    sc = res["scrape"]
    scrape_ms = statistics.median(sc["scrapes_s"]) * 1000
    lines.append(f"scrape of the agent's /metrics (10 specs + big-scrape, {KEYS:,} label sets, "
                 f"{sc['bytes'] / 1e6:.1f} MB): median {scrape_ms:.0f} ms of "
                 f"{len(sc['scrapes_s'])} (range {min(sc['scrapes_s']) * 1000:.0f}-"
                 f"{max(sc['scrapes_s']) * 1000:.0f} ms); the first, walking the map, "
                 f"{sc['first_s'] * 1000:.0f} ms; before the fill (big-scrape empty) "
                 f"{statistics.median(sc['empty_s']) * 1000:.0f} ms; agent RSS "
                 f"{sc['rss_mib']:.0f} MiB")
    agent_cpu, procs_cpu = med(res["agent"], "load_cpu_s"), med(res["processes"], "load_cpu_s")
    ratio: Optional[float] = agent_cpu / procs_cpu if procs_cpu else None
    rest = med(res["agent"], "rest_cpu_s") / max(med(res["processes"], "rest_cpu_s"), 1 / TICK)
    lines.append(f"agent CPU vs the 10 processes: at rest {rest:.2f}, under load "
                 + (f"{ratio:.2f}" if ratio is not None else "n/a"))
    lines.append(f"agent: specs=10 rss={med(res['agent'], 'load_rss_mib'):.0f} "
                 f"scrape-10k={scrape_ms:.0f} cpu-vs-10-processes="
                 + (f"{ratio:.2f}" if ratio is not None else "n/a"))
    fast = scrape_ms < 100
    cheaper = ratio is not None and ratio < 1
    lines.append(f"targets: scrape-10k<100ms {'met' if fast else 'NOT met'}; "
                 f"cpu-vs-10-processes<1 {'met' if cheaper else 'NOT met'}")
    return lines


def parse_rate(text: str) -> float:
    scale = {"k": 1e3, "M": 1e6}.get(text[-1:], 1.0)
    return float(text[:-1] if text[-1:] in "kM" else text) * scale


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=parse_rate, default=100e3, help="getppid/s, e.g. 100k")
    ap.add_argument("--scrapes", type=int, default=7)
    ap.add_argument("--json", help="also write every measurement to this file")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("agent_bench: needs root (BPF)", file=sys.stderr)
        return 2
    res = measure(args.rounds, args.rate, args.seconds, args.scrapes)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print("\n".join(report(res)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
