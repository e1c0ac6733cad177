"""Profiling, ebpf-run against bpftrace and BCC's profile on the same workload, same run.

    sudo .venv/bin/python bench/profile_bench.py [--seconds 2] [--rounds 3] [--json]

overhead: a CPU-bound program (tests/workloads/spin31.c, pinned to one CPU) runs with no
profiler, then with each of ebpf-run (specs/tools/profile.yaml), bpftrace (`profile:hz:N
{ @[kstack, ustack, comm] = count(); }`) and BCC's profile-bpfcc -F N sampling every CPU at
99 and at 999 Hz; the variants rotate order every round, figures are medians of rounds.
Two measures of what sampling costs:
- the BPF program's own time per sample (the kernel's run_time_ns / run_cnt of the
  perf_event programs the tool's process holds, counted while this bench holds
  BPF_ENABLE_STATS, which ends with its file descriptor): what differs between the
  tools, since all three sample through the same CPU clock perf event; precise whatever
  the machine's load. The ratio printed is this, at 99 Hz.
- the workload's rounds per second of its own CPU time (on a kernel without
  IRQ_TIME_ACCOUNTING, this machine's, the interrupts on its CPU are charged to it):
  1 - with / without, in percent. At these rates the cost is well under 1%, below what a
  shared machine's noise lets this see; it is printed as measured.

dump: bench/stacks10k.c makes 10,000 distinct user stacks (a getppid() at the end of each);
ebpf-run and bpftrace count them by kernel stack, user stack and comm. From SIGINT to the
tool's exit, its symbolized dump printed to a file, is the dump time (the workload stays
alive meanwhile, so both can read its mappings). How many distinct stacks each printed is
reported with it: a stack-map bucket that two stacks hash to keeps only the first.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from report import profile_lines

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PROFILE_SPEC = ROOT / "specs" / "tools" / "profile.yaml"
BCC_PROFILE = "/usr/sbin/profile-bpfcc"  # Debian's bpfcc-tools
WORKLOAD_CPU = "1"  # the workload's CPU; the profilers' own threads go elsewhere
HZ = (99, 999)
# bpftrace's maps and stack maps hold 4096 keys unless told: 10,000 stacks need more (its
# stack map is then 131072 buckets, and ~400 stacks still collide in it).
BPFTRACE_ENV = {"BPFTRACE_MAP_KEYS_MAX": "65536"}

# Both with a 131072-slot stack map (bpftrace's with the keys above), so that each keeps
# about as many of the 10,000 stacks.
DUMP_SPEC = """\
name: bench-stacks
stacks: {entries: 131072}
aggregations:
  calls:
    kind: count
    key: {kstack: kstack, ustack: ustack, comm: "char[16]"}
probes:
  enter:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - if: 'comm == "stacks10k"'
        then: [{aggregate: {map: calls, key: {kstack: kstack, ustack: ustack, comm: comm}}}]
"""
DUMP_BPFTRACE = ('tracepoint:syscalls:sys_enter_getppid /comm == "stacks10k"/ '
                 '{ @[kstack, ustack, comm] = count(); }')


@dataclass(frozen=True)
class Tool:
    """How to start one profiler and know it is sampling."""

    name: str
    argv: Sequence[str]
    stream: str  # where its dump comes: stdout, or stderr then its ready line
    env: Dict[str, str]


def build(tmp: Path) -> Dict[str, Path]:
    out = {}
    for name, src in (("spin31", ROOT / "tests" / "workloads" / "spin31.c"),
                      ("stacks10k", BENCH / "stacks10k.c")):
        out[name] = tmp / name
        subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-o", str(out[name]), str(src)],
                       check=True)
    return out


def profilers(hz: int, tmp: Path) -> List[Tool]:
    spec = tmp / f"profile-{hz}.yaml"
    # profile.yaml at another rate: its attach is fixed (a parameter cannot set it).
    spec.write_text(PROFILE_SPEC.read_text().replace('"hz:99"', f'"hz:{hz}"'))
    return [
        Tool("ebpf-run", (sys.executable, "-m", "runner", str(spec)), "stderr", {}),
        Tool("bpftrace", ("bpftrace", "-e",
                          f"profile:hz:{hz} {{ @[kstack, ustack, comm] = count(); }}"),
             "stdout", BPFTRACE_ENV),
        Tool("bcc", ("/usr/bin/python3", BCC_PROFILE, "-F", str(hz)), "stdout", {}),
    ]


def interruptible() -> None:
    """SIGINT as the default in the child: started in the background by a shell, the bench
    ignores it, and a Python tool (BCC's profile) would keep ignoring it and never stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """A tool started and waited for until it says it is ready; stopped with SIGINT, its
    output (the dump) going to a file."""

    def __init__(self, tool: Tool, out: Path):
        self.tool, self.out = tool, out
        piped = subprocess.PIPE
        with open(out, "wb") as file:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                tool.argv, cwd=ROOT, stdin=subprocess.DEVNULL, env={**os.environ, **tool.env},
                stdout=piped if tool.stream == "stdout" else file,
                stderr=piped if tool.stream == "stderr" else subprocess.DEVNULL,
                preexec_fn=interruptible)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 120) -> None:
        """ebpf-run says when it is ready (attached). bpftrace's "Attaching" line sits in
        its stdout buffer when that is a pipe, and BCC's profile prints its banner before
        it compiles: those are ready half a second after their process holds a BPF
        program (the attach follows the load)."""
        end = time.monotonic() + timeout
        if self.tool.stream == "stderr":
            while time.monotonic() < end:  # bounded: ebpf-run prints the line or exits
                line = self.proc.stderr.readline().decode(errors="replace")
                if "ebpf-run: ready" in line:
                    return
                if not line and self.proc.poll() is not None:
                    break
            raise RuntimeError(f"ebpf-run did not get ready (exit {self.proc.poll()})")
        while not held_programs(self.proc.pid):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError(f"{self.tool.name} loaded nothing (exit {self.proc.poll()})")
            time.sleep(0.1)
        time.sleep(0.5)

    def stop(self) -> float:
        """SIGINT, then the seconds until it exited, its dump written."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        pipe = getattr(self.proc, self.tool.stream)
        # The stream is a pipe: bpftrace's and BCC's dump comes on it (into the file);
        # ebpf-run's comes on stdout, straight into the file, and its stderr is read to
        # the end and dropped.
        with open(self.out if self.tool.stream == "stdout" else os.devnull, "ab") as sink:
            try:
                shutil.copyfileobj(pipe, sink)
                self.proc.wait(300)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        took = time.monotonic() - started
        pipe.close()
        return took


BPF_ENABLE_STATS, BPF_STATS_RUN_TIME = 32, 0
SYS_BPF = {"x86_64": 321, "aarch64": 280}


@contextlib.contextmanager
def bpf_stats() -> Iterator[None]:
    """The kernel counts every BPF program's run time while the returned descriptor is
    open (machine-wide: a few ns more per program run, for the bench's duration only; a
    killed bench closes it too, unlike the kernel.bpf_stats_enabled sysctl)."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(BPF_STATS_RUN_TIME.to_bytes(4, sys.byteorder), 8)
    fd = libc.syscall(SYS_BPF[os.uname().machine], BPF_ENABLE_STATS, attr, 8)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "BPF_ENABLE_STATS")
    try:
        yield
    finally:
        os.close(fd)


def held_programs(pid: int) -> Set[int]:
    """The ids of the BPF programs process `pid` holds open (its fds' `prog_id:` lines):
    the machine is shared, and other tests load sampling programs of the same names."""
    ids = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in fdinfo.iterdir():
        try:
            text = entry.read_text()
        except OSError:  # closed meanwhile
            continue
        found = re.search(r"^prog_id:\s*(\d+)", text, re.M)
        if found:
            ids.add(int(found.group(1)))
    return ids


def perf_programs(ids: Set[int]) -> Dict[int, Tuple[int, int]]:
    """Of those programs, the perf_event ones: id -> (run_time_ns, run_cnt)."""
    out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True,
                         check=True).stdout
    return {p["id"]: (p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in json.loads(out) if p.get("type") == "perf_event" and p["id"] in ids}


def ns_per_sample(pid: int) -> Tuple[float, int]:
    """The BPF time per run and the runs of the sampling programs process `pid` holds."""
    progs = perf_programs(held_programs(pid)).values()
    ns, runs = sum(v[0] for v in progs), sum(v[1] for v in progs)
    return (ns / runs if runs else float("nan")), runs


def rounds_per_cpu_second(spin31: Path, seconds: float) -> float:
    out = subprocess.run(["taskset", "-c", WORKLOAD_CPU, str(spin31), str(seconds)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[1]) / float(out[0])


def overhead(spin31: Path, tmp: Path, seconds: float, rounds: int,
             say: Callable[[str], None]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per rate and tool: the median added cost in percent of the workload's CPU, and the
    median BPF nanoseconds per sample."""
    result: Dict[str, Dict[str, Dict[str, float]]] = {}
    for hz in HZ:
        tools = profilers(hz, tmp)
        rates: Dict[str, List[float]] = {"none": [], **{t.name: [] for t in tools}}
        per_sample: Dict[str, List[float]] = {t.name: [] for t in tools}
        for r in range(rounds):
            order = tools[r % len(tools):] + tools[:r % len(tools)]
            rates["none"].append(rounds_per_cpu_second(spin31, seconds))
            for tool in order:
                running = Running(tool, tmp / f"{tool.name}-{hz}.out")
                try:
                    rates[tool.name].append(rounds_per_cpu_second(spin31, seconds))
                    ns, samples = ns_per_sample(running.proc.pid)
                finally:
                    running.stop()
                per_sample[tool.name].append(ns)
                say(f"{hz} Hz round {r + 1} {tool.name}: {rates[tool.name][-1]:.1f} "
                    f"rounds/CPU-s (none: {rates['none'][-1]:.1f}), {samples} samples, "
                    f"{ns:.0f} ns of BPF each")
        med = {k: statistics.median(v) for k, v in rates.items()}
        result[str(hz)] = {t.name: {"added_percent": round(100 * (1 - med[t.name]
                                                                  / med["none"]), 2),
                                    "bpf_ns_per_sample": round(statistics.median(
                                        per_sample[t.name]), 1)}
                           for t in tools}
    return result


def distinct_stacks(tool: str, text: str) -> int:
    """How many entries with a user stack the dump holds (bpftrace's `@[..., ]: N` lines,
    ebpf-run's the same; an entry whose user stack was lost has no user frames)."""
    return len(re.findall(r"\n    [^\n]*\n, stacks10k\]: \d+", text))


def dump(stacks10k: Path, tmp: Path, say: Callable[[str], None]) -> Dict[str, Dict[str, float]]:
    spec = tmp / "stacks.yaml"
    spec.write_text(DUMP_SPEC)
    tools = [Tool("ebpf-run", (sys.executable, "-m", "runner", str(spec)), "stderr", {}),
             Tool("bpftrace", ("bpftrace", "-e", DUMP_BPFTRACE), "stdout", BPFTRACE_ENV)]
    result = {}
    for tool in tools:
        out = tmp / f"dump-{tool.name}.txt"
        running = Running(tool, out)
        work = subprocess.Popen([str(stacks10k)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert work.stdout is not None and work.stdout.readline() == "done\n"
            took = running.stop()
        finally:
            work.communicate()  # closes its stdin: it exits
        stacks = distinct_stacks(tool.name, out.read_text(errors="replace"))
        say(f"dump: {tool.name} printed {stacks} distinct stacks in {took:.2f} s")
        result[tool.name] = {"seconds": round(took, 3), "stacks": stacks}
    return result


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 2) if a is not None and b else None


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0,
                   help="CPU seconds of the workload per measurement")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true", help="one JSON line (bench/run reads it)")
    args = p.parse_args(argv)
    missing = [x for x in ("bpftrace", "taskset", "cc", BCC_PROFILE) if not shutil.which(x)]
    if missing:
        print(f"needs {', '.join(missing)}", file=sys.stderr)
        return 2
    started = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - started:5.1f}s] {text}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory() as d, bpf_stats():
        tmp = Path(d)
        exe = build(tmp)
        costs = overhead(exe["spin31"], tmp, args.seconds, args.rounds, say)
        dumps = dump(exe["stacks10k"], tmp, say)
    default = costs[str(HZ[0])]
    results = {"overhead": costs, "dump": dumps,
               "ratio_overhead": ratio(default["ebpf-run"]["bpf_ns_per_sample"],
                                       default["bpftrace"]["bpf_ns_per_sample"]),
               "ratio_dump": ratio(dumps["ebpf-run"]["seconds"], dumps["bpftrace"]["seconds"])}
    if args.json:
        print(json.dumps(results))
        return 0
    print("\n".join(profile_lines(results)))
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("needs root (it loads BPF programs)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
