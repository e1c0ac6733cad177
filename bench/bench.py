"""bench/run: ebpf-run against a hand-written BCC program doing the same work, in one run.

Both sides trace syscalls:sys_enter_getppid and send a 48-byte record per call of the load
generator through a 256-page ring buffer; both print the same decoded text line per event
to /dev/null. Every measurement starts a fresh tool process, waits for its ready line,
drives the C load generator (bench/loadgen.c, run as uid 4242 so that only its calls are
traced), waits until the tool is idle again and stops it with SIGINT; the tool's own
summary gives received and lost, /proc gives its CPU time. The variants alternate (A B, then
B A) at every step, and every figure is a median over repetitions.

Phases: a check that every side prints the same text for the same calls; cold start-ups
(ebpf-run into an empty cache); a ladder of offered rates (the zero-loss rate, and
consumer CPU per event at the reference rate); the generator at full speed with each
ring-buffer tool attached (overhead on the traced workload). Start-up is the time from
spawning a tool to its ready line, over all of its runs. The perf-buffer pair and bpftrace
(peers.py) run in the ladder only, from lower rates, and are compared at PEER_RATE.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, ClassVar, Dict, List, Optional, Sequence, Tuple, Union

import peers

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BUILD = BENCH / "build"
OUT = BENCH / "out"
LOADGEN = BUILD / "loadgen"
COLD_CACHE = BUILD / "cold-cache"  # ebpf-run-cold's XDG_CACHE_HOME
GEN_UID = 4242  # the generator's uid; both tools filter on it in the kernel
# With two CPUs or more the tool runs on one and the generator on another, for every variant:
# left to the scheduler, the two sometimes share a CPU, which halves the generator's rate.
PIN = {"tool": 0, "gen": 1} if (os.cpu_count() or 1) >= 2 else {}
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
SETTLE_MAX = 5.0

FULL = {"reps": 3, "seconds": 3.0, "workload_seconds": 3.0, "misses": 2, "ring_from": 50e3,
        "rates": [10e3, 25e3, 50e3, 100e3, 150e3, 200e3, 300e3, 400e3, 500e3, 600e3, 800e3, 1e6,
                  1.2e6, 1.6e6, 2e6, 2.5e6, 3e6]}
QUICK = {"reps": 2, "seconds": 1.0, "workload_seconds": 1.0, "misses": 1,
         "rates": [25e3, 50e3, 100e3, 250e3, 500e3, 1e6], "ring_from": 100e3}
CPU_RATE = 100e3  # consumer CPU per event is compared here: both sides keep up
# The same for the perf-buffer pair and bpftrace: with a wakeup per event, BCC's consumer
# and bpftrace hold the generator below 50k calls/s here.
PEER_RATE = 25e3
PEERS = ("bcc-perf", "ebpf-run-perf", "bpftrace")


def cpu_rate(cfg: dict, peer: bool = False) -> float:
    want = PEER_RATE if peer else CPU_RATE
    return want if want in cfg["rates"] else min(cfg["rates"])


def reference_rates(cfg: dict) -> set:
    return {cpu_rate(cfg), cpu_rate(cfg, True)}


# -- the tools -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    argv: Tuple[str, ...]
    ready: str  # a line on stderr containing this means attached
    parse: Callable[[str], Optional[Tuple[int, int]]]  # stderr -> (received, lost)
    cwd: Path = ROOT
    env: Tuple[Tuple[str, str], ...] = ()
    # bpftrace: the ready line is on stdout, which the bench reads and counts (peers.py)
    stdout_ready: Optional[bytes] = None
    # The perf-buffer pair and bpftrace: a wakeup per event can hold the traced program
    # below 100k calls/s, so their ladder starts lower and they are compared at PEER_RATE.
    peer: bool = False


def parse_bcc(err: str) -> Optional[Tuple[int, int]]:
    m = re.search(r"bcc-getppid: summary: (\d+) received; (\d+) lost", err)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_ebpf_run(err: str) -> Optional[Tuple[int, int]]:
    m = re.search(r"^ebpf-run: summary: .*$", err, re.M)
    if not m:
        return None
    got = re.search(r"events: (\d+) received", m.group(0))
    lost = re.search(r"events: (\d+) lost", m.group(0))
    return (int(got.group(1)) if got else 0, int(lost.group(1)) if lost else 0)


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-bpfcc lives


def bcc_variant() -> Variant:
    # Run as the book runs its programs (#!/usr/bin/python3): the distribution's Python,
    # without the venv's site processing, which ebpf-run, installed in its venv, pays.
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    return Variant("bcc", (python, str(BENCH / "bcc_getppid.py")), "bcc-getppid: ready",
                   parse_bcc)


def ebpf_run_variant(name: str, tree: Optional[Path], spec_file: str = "getppid.yaml",
                     env: Tuple[Tuple[str, str], ...] = ()) -> Variant:
    spec = str(BENCH / spec_file)
    if tree is None:  # the installed command, as a user runs it
        return Variant(name, (str(ROOT / ".venv" / "bin" / "ebpf-run"), spec),
                       "ebpf-run: ready", parse_ebpf_run, env=env)
    # Another source tree (a prototype copy), run from inside it: `python -m runner` then
    # imports that tree's runner package, not the installed one.
    return Variant(name, (sys.executable, "-m", "runner", spec), "ebpf-run: ready",
                   parse_ebpf_run, tree, env)


def peer_variants(tree: Optional[Path]) -> List[Variant]:
    """The perf-buffer pair and bpftrace: ladder rows, no full-speed rows."""
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    out = [Variant("bcc-perf", (python, str(BENCH / "bcc_getppid_perf.py")),
                   "bcc-getppid: ready", parse_bcc, peer=True),
           replace(ebpf_run_variant("ebpf-run-perf", tree, "getppid_perf.yaml"), peer=True)]
    if peers.has_bpftrace():
        out.append(Variant("bpftrace", peers.bpftrace_argv(), "", peers.parse_bpftrace,
                           stdout_ready=b"ready\n", peer=True))
    return out


def child_env(extra: Tuple[Tuple[str, str], ...] = ()) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    # Unbuffered stdout would cost one or two write() per printed line on the BCC side.
    env.pop("PYTHONUNBUFFERED", None)
    # Cached bytecode on both sides, as in an installed program, kept under bench/build.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(BUILD / "pycache")
    return env


# -- one measurement -----------------------------------------------------------------------


@dataclass
class Result:
    variant: str
    phase: str
    rep: int
    rate: float  # offered (target) calls/s; 0 means as fast as possible
    calls: int = 0
    achieved: float = 0.0  # calls/s the generator made
    gen_cpu_s: float = 0.0  # the generator's own CPU time: the probe runs inside its syscalls
    received: int = 0
    lost: int = 0
    cpu_s: float = 0.0  # consumer CPU from just before the load to idle after it
    startup_s: float = 0.0
    error: str = ""

    @property
    def gap(self) -> int:
        return self.calls - self.received - self.lost

    @property
    def zero_loss(self) -> bool:
        return (not self.error and self.lost == 0 and self.gap == 0
                and self.achieved >= 0.95 * self.rate)

    @property
    def cpu_per_event_us(self) -> Optional[float]:
        return self.cpu_s / self.received * 1e6 if self.received else None

    @property
    def gen_ns_per_call(self) -> Optional[float]:
        return self.gen_cpu_s / self.calls * 1e9 if self.calls else None


def cpu_ns(pid: int) -> int:
    """Run time of every thread of a process, in ns (schedstat), or 0 once it is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


class Tool:
    """One tool process: stdout to /dev/null, stderr collected line by line."""

    live: ClassVar[Dict[int, subprocess.Popen]] = {}  # every child still running, to stop on abort

    def __init__(self, variant: Variant, stdout: Union[int, IO[Any]] = subprocess.DEVNULL,
                 pinned: bool = True):
        self.variant = variant
        self.lines: List[str] = []
        self.ready_at: Optional[float] = None
        self.started = time.monotonic()
        counted = variant.stdout_ready is not None
        self.proc = subprocess.Popen(
            variant.argv, cwd=variant.cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if counted else stdout,
            stderr=subprocess.PIPE, env=child_env(variant.env))
        Tool.live[self.proc.pid] = self.proc
        if pinned:
            pin(self.proc.pid, "tool")
        self.counter: Optional[peers.StdoutCounter] = None
        if counted:
            assert self.proc.stdout is not None and variant.stdout_ready is not None
            self.counter = peers.StdoutCounter(
                self.proc.stdout, variant.stdout_ready, self._ready,
                None if isinstance(stdout, int) else stdout)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _ready(self) -> None:
        if self.ready_at is None:
            self.ready_at = time.monotonic()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.ready_at is None and self.variant.ready and self.variant.ready in line:
                self.ready_at = time.monotonic()
            self.lines.append(line)

    def wait_ready(self) -> float:
        end = self.started + READY_TIMEOUT
        while self.ready_at is None:
            if self.proc.poll() is not None or time.monotonic() > end:
                self.stop()
                raise RuntimeError(f"{self.variant.name} did not become ready:\n"
                                   + "\n".join(self.lines[-15:]))
            time.sleep(0.005)
        return self.ready_at - self.started

    def settle(self) -> int:
        """Wait until the consumer has stopped using CPU (it drained the buffer)."""
        end = time.monotonic() + SETTLE_MAX
        last, quiet = cpu_ns(self.proc.pid), 0
        while time.monotonic() < end:
            time.sleep(0.05)
            now = cpu_ns(self.proc.pid)
            quiet = quiet + 1 if now - last < 1_000_000 else 0
            last = now
            if quiet >= 3:
                break
        return last

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self.lines.append("bench: killed after SIGINT was not enough")
        Tool.live.pop(self.proc.pid, None)
        self.reader.join(5)
        if self.counter is not None:
            self.lines.append(self.counter.summary(5))
        return "\n".join(self.lines)


def pin(pid: int, role: str) -> None:
    if role in PIN:
        with contextlib.suppress(OSError):  # it has already exited
            os.sched_setaffinity(pid, {PIN[role]})


def stop_all() -> None:
    for pid, proc in list(Tool.live.items()):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        Tool.live.pop(pid, None)


def loadgen(rate: float, seconds: float) -> Tuple[int, float, int, float]:
    """Run the generator as GEN_UID; (calls, achieved rate, its pid, its CPU seconds)."""
    proc = subprocess.Popen([str(LOADGEN), str(int(rate)), str(seconds)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            user=GEN_UID, group=GEN_UID, extra_groups=[])
    pin(proc.pid, "gen")
    try:
        stdout, stderr = proc.communicate(timeout=seconds * 4 + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError("the load generator did not finish") from None
    m = re.search(rb"calls=(\d+) seconds=([\d.]+) rate=\d+ cpu=([\d.]+)", stdout)
    if proc.returncode or not m:
        raise RuntimeError(f"the load generator failed: {stderr.decode()}")
    calls, took = int(m.group(1)), float(m.group(2))
    return calls, calls / took, proc.pid, float(m.group(3))


def measure(variant: Optional[Variant], phase: str, rep: int, rate: float,
            seconds: float) -> Result:
    """One run: start the tool, load, settle, stop. variant None: no tool at all."""
    r = Result(variant.name if variant else "none", phase, rep, rate)
    if variant is None:
        r.calls, r.achieved, _, r.gen_cpu_s = loadgen(rate, seconds)
        return r
    tool = Tool(variant)
    try:
        r.startup_s = tool.wait_ready()
        before = cpu_ns(tool.proc.pid)
        r.calls, r.achieved, _, r.gen_cpu_s = loadgen(rate, seconds)
        after = tool.settle()
        r.cpu_s = (after - before) / 1e9
    finally:
        err = tool.stop()
    counts = variant.parse(err)
    if counts is None:
        r.error = "no summary: " + " | ".join(err.splitlines()[-5:])
    else:
        r.received, r.lost = counts
    return r


# -- phases --------------------------------------------------------------------------------


def check_same_text(variants: Sequence[Variant]) -> str:
    """Both sides, the same calls: the same line for each call (pid, tid, cpu, time vary)."""
    OUT.mkdir(exist_ok=True)
    shown = ""
    for v in variants:
        out = OUT / f"check-{v.name}.txt"
        with open(out, "wb") as f:
            tool = Tool(v, f)
            try:
                tool.wait_ready()
                calls, _, pid, _ = loadgen(20e3, 0.25)
                tool.settle()
            finally:
                err = tool.stop()
        lines = out.read_text().splitlines()
        if v.stdout_ready is not None:  # bpftrace ends with blank lines
            lines = [ln for ln in lines if ln]
        pattern = re.compile(rf"^{pid} {pid} {GEN_UID} \d+ \d+ 110 loadgen$")
        bad = [ln for ln in lines if not pattern.match(ln)]
        if len(lines) != calls or bad or v.parse(err) != (calls, 0):
            raise RuntimeError(f"{v.name} printed {len(lines)} lines for {calls} calls "
                               f"(first unexpected: {bad[:1]}); summary: {v.parse(err)}")
        shown += f"\n  {v.name:<10} {lines[0]}"
    return shown


def order(variants: Sequence[Optional[Variant]], flip: bool) -> List[Optional[Variant]]:
    return list(reversed(variants)) if flip else list(variants)


def ladder(variants: Sequence[Variant], cfg: dict, log: Callable[[Result], None]) -> List[Result]:
    results: List[Result] = []
    for rep in range(cfg["reps"]):
        misses = {v.name: 0 for v in variants}
        for i, rate in enumerate(cfg["rates"]):
            # At the reference rate also the generator alone: its cost per call without probe.
            step: List[Optional[Variant]] = [
                v for v in variants if v.peer or rate >= cfg.get("ring_from", 0)]
            if rate in reference_rates(cfg):
                step.append(None)
            for v in order(step, (rep + i) % 2 == 1):
                if v is None:
                    r = measure(None, "ladder", rep, rate, cfg["seconds"])
                    results.append(r)
                    log(r)
                    continue
                if misses[v.name] >= cfg["misses"]:
                    continue
                r = measure(v, "ladder", rep, rate, cfg["seconds"])
                results.append(r)
                log(r)
                misses[v.name] = 0 if r.zero_loss else misses[v.name] + 1
            if all(n >= cfg["misses"] for n in misses.values()):
                break
    return results


def workload(variants: Sequence[Variant], cfg: dict,
             log: Callable[[Result], None]) -> List[Result]:
    results: List[Result] = []
    everyone: List[Optional[Variant]] = [None, *variants]
    for rep in range(cfg["reps"]):
        for v in order(everyone, rep % 2 == 1):
            r = measure(v, "workload", rep, 0, cfg["workload_seconds"])
            results.append(r)
            log(r)
    return results


def startup(variants: Sequence[Variant], cfg: dict,
            log: Callable[[Result], None]) -> List[Result]:
    """Start each tool, wait for ready, stop it: nothing else. Twice each: unpinned, as a
    user runs it (no generator runs in this phase, so nothing needs a CPU of its own), and
    pinned to the ladder's tool CPU (`startup-1cpu`: what it costs with one CPU)."""
    results: List[Result] = []
    for rep in range(cfg["reps"]):
        for v in order(variants, rep % 2 == 1):
            for phase in ("startup", "startup-1cpu"):
                results.append(start_once(v, phase, rep))
                log(results[-1])
    return results


def start_once(v: Variant, phase: str, rep: int) -> Result:
    r = Result(v.name, phase, rep, 0)
    if v.name == "ebpf-run-cold":
        shutil.rmtree(COLD_CACHE, ignore_errors=True)
        COLD_CACHE.mkdir(mode=0o700, parents=True)
    tool = Tool(v, pinned=phase == "startup-1cpu")
    try:
        r.startup_s = tool.wait_ready()
    except RuntimeError as e:
        r.error = str(e).splitlines()[0]
    finally:
        tool.stop()
    return r


# -- the report ----------------------------------------------------------------------------


def median(xs: Sequence[Optional[float]]) -> Optional[float]:
    known = [x for x in xs if x is not None]
    return statistics.median(known) if known else None


def zero_loss_rate(results: Sequence[Result], name: str, rep: int) -> float:
    ok = [r.rate for r in results if r.variant == name and r.rep == rep and r.phase == "ladder"
          and r.zero_loss]
    return max(ok, default=0.0)


def startup_median(results: Sequence[Result], name: str, phase: str) -> Optional[float]:
    """From the start-up phase for the variants started there; for the others (the perf
    pair) from all their runs, which are pinned."""
    ok = [r for r in results if r.variant == name and not r.error and r.startup_s]
    own = [r.startup_s for r in ok if r.phase == phase]
    return median(own or [r.startup_s for r in ok])


@dataclass
class Summary:
    zero_loss: Dict[str, Optional[float]] = field(default_factory=dict)
    zero_loss_reps: Dict[str, List[float]] = field(default_factory=dict)
    capped: Dict[str, bool] = field(default_factory=dict)
    cpu_us: Dict[str, Optional[float]] = field(default_factory=dict)
    startup_s: Dict[str, Optional[float]] = field(default_factory=dict)
    startup_1cpu_s: Dict[str, Optional[float]] = field(default_factory=dict)
    workload: Dict[str, Optional[float]] = field(default_factory=dict)
    delivered: Dict[str, Optional[float]] = field(default_factory=dict)  # at full speed, /s
    per_cpu_s: Dict[str, Optional[float]] = field(default_factory=dict)  # calls per CPU-second
    gen_ns: Dict[str, Optional[float]] = field(default_factory=dict)  # at the reference rate
    alone_ns: Dict[str, Optional[float]] = field(default_factory=dict)  # none, at n's rate
    lowest: float = 0.0  # the ladder's lowest rate


def summarize(results: Sequence[Result], names: Sequence[str], cfg: dict) -> Summary:
    s = Summary(lowest=min(cfg["rates"]))
    top = max(cfg["rates"])
    for n in names:
        reps = [zero_loss_rate(results, n, rep) for rep in range(cfg["reps"])]
        s.zero_loss_reps[n] = reps
        s.zero_loss[n] = median(reps)
        s.capped[n] = s.zero_loss[n] == top
        s.cpu_us[n] = median([r.cpu_per_event_us for r in results if r.variant == n
                              and r.phase == "ladder" and r.rate == cpu_rate(cfg, n in PEERS)
                              and not r.error])
        s.startup_s[n] = startup_median(results, n, "startup")
        s.startup_1cpu_s[n] = startup_median(results, n, "startup-1cpu")
    for n in ["none", *names]:
        full = [r for r in results if r.variant == n and r.phase == "workload" and not r.error]
        s.workload[n] = median([r.achieved for r in full])
        s.delivered[n] = median([r.received * r.achieved / r.calls for r in full if r.calls])
        s.per_cpu_s[n] = median([1e9 / ns for r in full if (ns := r.gen_ns_per_call)])
        s.gen_ns[n] = median([r.gen_ns_per_call for r in results if r.variant == n
                              and r.phase == "ladder" and r.rate == cpu_rate(cfg, n in PEERS)
                              and not r.error])
        s.alone_ns[n] = median([r.gen_ns_per_call for r in results if r.variant == "none"
                                and r.phase == "ladder"
                                and r.rate == cpu_rate(cfg, n in PEERS)])
    return s


def fmt_rate(x: Optional[float]) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.0f}k"


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def table(results: Sequence[Result], names: Sequence[str]) -> str:
    head = ("variant", "offered/s", "achieved/s", "received", "lost", "gap", "CPU/event",
            "start-up", "gen CPU/call", "runs")
    rows: List[Tuple[str, ...]] = [head]
    keys: List[Tuple[str, str, float]] = []
    for r in results:
        k = (r.phase, r.variant, r.rate)
        if k not in keys:
            keys.append(k)
    keys.sort(key=lambda k: (k[0] != "ladder", k[2], ["none", *names].index(k[1])))
    for phase, name, rate in keys:
        rs = [r for r in results if (r.phase, r.variant, r.rate) == (phase, name, rate)]
        good = [r for r in rs if not r.error]

        def med(get: Callable[[Result], Optional[float]],
                rs: List[Result] = good) -> Optional[float]:
            return median([get(r) for r in rs])

        cpu = med(lambda r: r.cpu_per_event_us)
        start = med(lambda r: r.startup_s) if name != "none" else None
        gen = med(lambda r: r.gen_ns_per_call)
        rows.append((
            name, "max" if rate == 0 else fmt_rate(rate), fmt_rate(med(lambda r: r.achieved)),
            _int(med(lambda r: r.received)) if name != "none" else "-",
            _int(med(lambda r: r.lost)) if name != "none" else "-",
            _int(med(lambda r: r.gap)) if name != "none" else "-",
            f"{cpu:.2f} us" if cpu is not None else "-",
            f"{start * 1000:.0f} ms" if start is not None else "-",
            f"{gen:.0f} ns" if gen is not None else "-",
            f"{len(good)}" + (f" ({len(rs) - len(good)} failed)" if len(rs) > len(good) else ""),
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def _int(x: Optional[float]) -> str:
    return "-" if x is None else f"{x:,.0f}"


def report(results: Sequence[Result], names: Sequence[str], cfg: dict,
           aggregations: Optional[Dict[str, Optional[float]]] = None) -> str:
    s = summarize(results, names, cfg)
    lines = [table(results, names), ""]
    laddered = [n for n in names if any(r.variant == n and r.phase == "ladder"
                                        for r in results)]
    full_speed = [n for n in names if any(r.variant == n and r.phase == "workload"
                                          for r in results)]
    for n in laddered:
        cap = " (the ladder's top: a lower bound)" if s.capped[n] else ""
        per = ", ".join(fmt_rate(x) for x in s.zero_loss_reps[n])
        lines.append(f"zero-loss rate  {n:<14} {fmt_rate(s.zero_loss[n])}/s{cap} "
                     f"(per repetition: {per})")
    for n in laddered:
        cpu = s.cpu_us[n]
        at = fmt_rate(cpu_rate(cfg, n in PEERS))
        lines.append(f"CPU per event   {n:<14} "
                     + (f"{cpu:.2f} us at {at}/s" if cpu is not None else "-"))
    for n in names:
        st = s.startup_s[n]
        lines.append(f"start-up        {n:<14} "
                     + (f"{st * 1000:.0f} ms to ready" if st is not None else "-"))
    for n in ["none", *full_speed]:
        lines.append(f"workload        {n:<14} {fmt_rate(s.workload[n])} calls/s at full speed "
                     f"({fmt_rate(s.per_cpu_s[n])} per second of its own CPU)"
                     + (", no tool attached" if n == "none" else
                        f", {fmt_rate(s.delivered[n])} events/s of them received"))
    for n in laddered:
        with_probe, alone = s.gen_ns[n], s.alone_ns[n]
        rate = fmt_rate(cpu_rate(cfg, n in PEERS))
        lines.append(f"probe cost      {n:<14} " + (
            f"{with_probe - alone:+.0f} ns of generator CPU per call at {rate}/s "
            f"({with_probe:.0f} ns, {alone:.0f} ns without a probe)"
            if with_probe is not None and alone is not None else "-"))
    lines.append("")
    base = "bcc"
    # Extra variants first: the last line is always the primary ebpf-run's.
    for n in sorted((n for n in full_speed if n != base), key=lambda n: n == "ebpf-run"):
        zl = ratio(s.zero_loss[n], s.zero_loss[base])
        if s.capped[n] and zl != "n/a":
            zl = ">=" + zl
        label = "" if n == "ebpf-run" else f" ({n})"
        lines.append(f"targets{label}: {targets_met(s, n, base)}")
        if n == "ebpf-run":
            lines += peer_lines(s, names, aggregations or {})
        lines.append(f"ratios vs BCC{label}: zero-loss-rate={zl} "
                     f"cpu-per-event={ratio(s.cpu_us[n], s.cpu_us[base])} "
                     f"startup={ratio(s.startup_s[n], s.startup_s[base])} "
                     f"workload={ratio(s.workload[n], s.workload[base])}")
    return "\n".join(lines)


def probe_cost(s: Summary, n: str) -> Optional[float]:
    with_probe, alone = s.gen_ns.get(n), s.alone_ns.get(n)
    return with_probe - alone if with_probe is not None and alone is not None else None


def zl_ratio(s: Summary, n: str, base: str) -> str:
    if n not in s.zero_loss or base not in s.zero_loss:
        return "n/a"
    ours = s.zero_loss[n]
    if s.zero_loss[base] == 0 and ours:
        # The other side lost events even at the lowest step: a lower bound.
        return f">{ours / s.lowest:.2f}"
    zl = ratio(ours, s.zero_loss[base])
    return ">=" + zl if s.capped[n] and zl != "n/a" else zl


def peer_lines(s: Summary, names: Sequence[str],
               aggregations: Dict[str, Optional[float]]) -> List[str]:
    """The perf-buffer pair, start-up and bpftrace lines (the last line stays the ring's)."""
    def get(d: Dict[str, Optional[float]], n: str) -> Optional[float]:
        return d.get(n) if n in names else None

    def agg(key: str) -> str:
        x = aggregations.get(key)
        return f"{x:.2f}" if x is not None else "n/a"

    def one_cpu(n: str) -> str:
        return ratio(get(s.startup_1cpu_s, n), get(s.startup_1cpu_s, "bcc"))

    warm, bcc = get(s.startup_s, "ebpf-run"), get(s.startup_s, "bcc")
    cold, bt = get(s.startup_s, "ebpf-run-cold"), get(s.startup_s, "bpftrace")
    perf = {"zl": zl_ratio(s, "ebpf-run-perf", "bcc-perf"),
            "cpu": ratio(get(s.cpu_us, "ebpf-run-perf"), get(s.cpu_us, "bcc-perf")),
            "probe": ratio(probe_cost(s, "ebpf-run-perf"), probe_cost(s, "bcc-perf"))}
    vs_bt = {"startup": ratio(warm, bt), "zl": zl_ratio(s, "ebpf-run", "bpftrace")}

    def met(x: str, ok: Callable[[float], bool]) -> str:
        return "n/a" if x == "n/a" else ("met" if ok(float(x.lstrip(">="))) else "NOT met")

    return [
        f"start-up cold vs BCC: {ratio(cold, bcc)} (a first run: empty cache directory; "
        f"pinned to one CPU: cold {one_cpu('ebpf-run-cold')}, warm {one_cpu('ebpf-run')})",
        "targets (perf buffer, start-up, bpftrace): "
        f"perf zero-loss-rate>=4 {met(perf['zl'], lambda x: x >= 4)}; "
        f"perf cpu-per-event<=0.3 {met(perf['cpu'], lambda x: x <= 0.3)}; "
        f"perf probe-cost<=0.5 {met(perf['probe'], lambda x: x <= 0.5)}; "
        f"startup warm<=0.5 {met(ratio(warm, bcc), lambda x: x <= 0.5)}; "
        f"startup cold<=1.0 {met(ratio(cold, bcc), lambda x: x <= 1.0)}; "
        f"vs bpftrace zero-loss-rate>=4 {met(vs_bt['zl'], lambda x: x >= 4)}; "
        f"vs bpftrace startup<=2 {met(vs_bt['startup'], lambda x: x <= 2)}",
        f"ratios vs BCC (perf buffer): zero-loss-rate={perf['zl']} "
        f"cpu-per-event={perf['cpu']} probe-cost={perf['probe']}",
        f"ratios vs bpftrace: startup={vs_bt['startup']} zero-loss-rate={vs_bt['zl']} "
        f"probe-cost-count={agg('probe-cost-count')} probe-cost-hist={agg('probe-cost-hist')}",
        f"startup warm vs BCC: {ratio(warm, bcc)}",
    ]


def targets_met(s: Summary, n: str, base: str) -> str:
    def check(a: Optional[float], b: Optional[float], ok: Callable[[float], bool]) -> str:
        # Judged on the ratio as printed (two decimals), so the two lines agree.
        return "n/a" if a is None or not b else ("met" if ok(round(a / b, 2)) else "NOT met")

    return (f"zero-loss-rate>=2 {check(s.zero_loss[n], s.zero_loss[base], lambda x: x >= 2)}; "
            f"cpu-per-event<=0.5 {check(s.cpu_us[n], s.cpu_us[base], lambda x: x <= 0.5)}; "
            f"startup<=1.1 {check(s.startup_s[n], s.startup_s[base], lambda x: x <= 1.1)}; "
            f"workload>=0.95 {check(s.workload[n], s.workload[base], lambda x: x >= 0.95)}")


# -- the command ---------------------------------------------------------------------------


def build_loadgen() -> None:
    BUILD.mkdir(exist_ok=True)
    src = BENCH / "loadgen.c"
    if LOADGEN.exists() and LOADGEN.stat().st_mtime >= src.stat().st_mtime:
        return
    subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", str(LOADGEN), str(src)], check=True)


def bench_programs() -> Dict[int, str]:
    """BPF programs that look like ours (names are cut to 15 characters by the kernel)."""
    try:
        out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {p["id"]: p.get("name", "") for p in json.loads(out or b"[]")
            if p.get("name", "").startswith(("er_getppid", "tracepoint__sys", "sys_enter_getp"))}


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark ebpf-run against hand-written BCC (ring buffer, getppid "
                    "tracepoint, 48-byte events), alternating A/B in one run.")
    p.add_argument("--quick", action="store_true",
                   help="a reduced run (2 repetitions, 1 s steps, 4 rates): under a minute")
    p.add_argument("--reps", type=int, help="repetitions of every measurement")
    p.add_argument("--seconds", type=float, help="seconds of load per ladder step")
    p.add_argument("--rates", help="offered rates of the ladder, e.g. 100k,200k,1M")
    p.add_argument("--tree", type=Path, metavar="DIR",
                   help="measure the ebpf-run source tree in DIR (e.g. a prototype copy) "
                        "instead of the installed ebpf-run command")
    p.add_argument("--also", action="append", default=[], metavar="NAME=DIR",
                   help="add the ebpf-run source tree in DIR as one more variant NAME")
    p.add_argument("--no-pin", action="store_true",
                   help="let the scheduler place the tool and the generator (default: CPU 0 "
                        "and CPU 1)")
    p.add_argument("--report", type=Path, metavar="FILE",
                   help="measure nothing: print the report of an earlier run's --json FILE")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="also write every measurement to FILE (default bench/out/last.json)")
    return p.parse_args(argv)


def parse_rate(text: str) -> float:
    text = text.strip().lower()
    scale = {"k": 1e3, "m": 1e6}.get(text[-1:], 1.0)
    return float(text[:-1] if scale != 1.0 else text) * scale


def config(args: argparse.Namespace) -> dict:
    cfg = dict(QUICK if args.quick else FULL)
    if args.reps:
        cfg["reps"] = args.reps
    if args.seconds:
        cfg["seconds"] = cfg["workload_seconds"] = args.seconds
    if args.rates:
        cfg["rates"] = sorted(parse_rate(x) for x in args.rates.split(","))
    return cfg


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if args.report:
        try:
            saved = json.loads(args.report.read_text())
            text = report([Result(**r) for r in saved["results"]], saved["variants"],
                          saved["config"], saved.get("aggregations"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            print(f"bench/run: --report {args.report}: not an earlier run's --json file ({e!r})",
                  file=sys.stderr)
            return 2
        print(text)
        return 0
    cfg = config(args)
    if args.no_pin:
        PIN.clear()
    if os.geteuid() != 0:
        print("bench/run: needs root (it loads BPF programs)", file=sys.stderr)
        return 2
    variants = [bcc_variant(), ebpf_run_variant("ebpf-run", args.tree)]
    for spec in args.also:
        name, _, d = spec.partition("=")
        variants.append(ebpf_run_variant(name, Path(d).resolve()))
    others = peer_variants(args.tree)
    # A first run: an empty cache directory (emptied before every start), so it renders,
    # compiles and stores, as a new or changed spec does.
    cold = ebpf_run_variant("ebpf-run-cold", args.tree,
                            env=(("XDG_CACHE_HOME", str(COLD_CACHE)),))
    # Every side's start-up comes from the start-up phase, each started alone; ebpf-run's
    # render and program caches are warm there (filled by the check above).
    starters = [*variants[:2], cold, *[v for v in others if v.name == "bpftrace"]]
    names = [v.name for v in [*variants, *others, cold]]
    aggregations: Dict[str, Optional[float]] = {}
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {text}", file=sys.stderr, flush=True)

    def log(r: Result) -> None:
        cpu = r.cpu_per_event_us
        rate = "max" if not r.rate else fmt_rate(r.rate)
        say(f"{r.phase} rep {r.rep + 1} {r.variant:<10} {rate:>5}: "
            f"{r.calls:,} calls at {fmt_rate(r.achieved)}/s"
            + ("" if r.variant == "none" else
               f", received {r.received:,}, lost {r.lost:,}, gap {r.gap:,}"
               + (f", {cpu:.2f} us CPU/event" if cpu else "")
               + f", ready in {r.startup_s * 1000:.0f} ms")
            + (f" ERROR {r.error}" if r.error else ""))

    build_loadgen()
    before = set(bench_programs())
    with open("/proc/loadavg") as f:
        say(f"load average {' '.join(f.read().split()[:3])} on {os.cpu_count()} CPUs; "
            f"{'quick' if args.quick else 'full'} run: {cfg['reps']} repetitions, "
            f"{cfg['seconds']:g} s steps, rates {', '.join(fmt_rate(x) for x in cfg['rates'])}; "
            + (f"tools on CPU {PIN['tool']}, generator on CPU {PIN['gen']}" if PIN
               else "unpinned"))
    results: List[Result] = []
    try:
        say("check: the same text from every side:" + check_same_text([*variants, *others]))
        results += startup(starters, cfg, log)
        results += ladder([*variants, *others], cfg, log)
        results += workload(variants, cfg, log)
        # Short in --quick: only the two ratios of that file are used here.
        aggregations = peers.aggregation_ratios(0.5 if args.quick else 2.0, cfg["reps"], say)
    except KeyboardInterrupt:
        say("interrupted: stopping the tools")
        return 130
    finally:
        stop_all()
        OUT.mkdir(exist_ok=True)
        dest = args.json or OUT / "last.json"
        dest.write_text(json.dumps({"config": cfg, "variants": names,
                                    "results": [asdict(r) for r in results],
                                    "aggregations": aggregations}, indent=1))
        left = {i: n for i, n in bench_programs().items() if i not in before}
        say("left attached: " + (", ".join(f"{i} {n}" for i, n in left.items()) or "nothing")
            + f"; every measurement in {dest}")
    print(f"ebpf-run vs hand-written BCC: getppid tracepoint, 48-byte events, 256-page ring "
          f"buffer, text to /dev/null; {cfg['reps']} repetitions, medians; ladder steps "
          f"{cfg['seconds']:g} s, workload {cfg['workload_seconds']:g} s at full speed; "
          f"CPU/event compared at {fmt_rate(cpu_rate(cfg))}/s; "
          + ("tool and generator pinned to CPUs 0 and 1" if PIN else "unpinned"))
    print(report(results, names, cfg, aggregations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
