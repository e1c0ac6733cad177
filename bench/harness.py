"""The bench's machinery: the variants' shape, one tool process (started, made ready, loaded,
stopped, its CPU read), the load generator, and the phases (the same-text check, start-up,
the ladder of rates, the workload at full speed). bench.py runs it; report.py reads what it
measured; variants.py says who is measured."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
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
