"""In-kernel aggregation cost, ebpf-run against bpftrace on the same tracepoints, same run.

    sudo .venv/bin/python bench/bpftrace_agg.py [--seconds 2] [--rounds 3] [--json]

For each case the load generator (bench/loadgen.c, getppid() as fast as it can) runs with
no tracer, with ebpf-run and with bpftrace attached; what a call costs more than without a
tracer is the probe's cost. Rounds interleave the three, so a change in the machine's load
hits all of them; the median of the rounds is reported, and ebpf-run / bpftrace as a ratio.

Cases:
  count   a count keyed by pid on syscalls:sys_enter_getppid
          (bpftrace: @[pid] = count())
  hist    a latency histogram: entry stores the time per thread, exit records
          ktime - start in a log2 histogram and deletes the start
          (bpftrace: @s[tid] = nsecs; ... @h = hist(nsecs - @s[tid]); delete(@s[tid]))
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent

COUNT_SPEC = """\
name: bench-count
aggregations:
  calls: {kind: count, key: {pid: u32}}
probes:
  enter:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - aggregate: {map: calls, key: {pid: pid}}
"""

HIST_SPEC = """\
name: bench-hist
maps:
  start: {type: hash, key: u32, value: u64}
aggregations:
  nsecs: {kind: hist, unit: ns}
probes:
  leave:
    attach: {tracepoint: "syscalls:sys_exit_getppid"}
    do:
      - aggregate: {map: nsecs, elapsed: {map: start, key: tid}}
  enter:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - store: {map: start, key: tid, value: ktime}
"""

BPFTRACE = {
    "count": "tracepoint:syscalls:sys_enter_getppid { @[pid] = count(); }",
    "hist": ("tracepoint:syscalls:sys_enter_getppid { @s[tid] = nsecs; } "
             "tracepoint:syscalls:sys_exit_getppid /@s[tid]/ "
             "{ @h = hist(nsecs - @s[tid]); delete(@s[tid]); }"),
}
SPECS = {"count": COUNT_SPEC, "hist": HIST_SPEC}


def build_loadgen(tmp: Path) -> Path:
    exe = tmp / "loadgen"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "bench" / "loadgen.c")],
                   check=True)
    return exe


def ns_per_call(loadgen: Path, seconds: float) -> float:
    out = subprocess.run([str(loadgen), "0", str(seconds)], capture_output=True, text=True,
                         check=True).stdout
    fields = dict(part.split("=") for part in out.split())
    return float(fields["seconds"]) * 1e9 / float(fields["calls"])


def wait_line(proc: subprocess.Popen, stream: str, needle: str, timeout: float = 120) -> None:
    pipe = getattr(proc, stream)
    end = time.monotonic() + timeout
    while time.monotonic() < end:  # bounded: the tracer prints the line or exits
        line = pipe.readline()
        if needle in line:
            return
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"{proc.args[0]} did not get ready")


def with_tracer(kind: str, case: str, spec_path: Path, loadgen: Path, seconds: float) -> float:
    if kind == "ebpf-run":
        args = [sys.executable, "-m", "runner", str(spec_path), "--duration", "3600"]
        stream, needle = "stderr", "ready"
    else:
        args = ["bpftrace", "-e", BPFTRACE[case]]
        stream, needle = "stdout", "Attaching"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_line(proc, stream, needle)
        if kind == "bpftrace":
            time.sleep(0.5)  # "Attaching N probes..." comes before the attach itself
        return ns_per_call(loadgen, seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if shutil.which("bpftrace") is None:
        print("bpftrace is not installed", file=sys.stderr)
        return 2
    results: Dict[str, Dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        loadgen = build_loadgen(Path(tmp))
        for case, text in SPECS.items():
            spec = Path(tmp) / f"{case}.yaml"
            spec.write_text(text)
            runs: Dict[str, List[float]] = {"none": [], "ebpf-run": [], "bpftrace": []}
            for _ in range(args.rounds):
                runs["none"].append(ns_per_call(loadgen, args.seconds))
                for kind in ("ebpf-run", "bpftrace"):
                    runs[kind].append(with_tracer(kind, case, spec, loadgen, args.seconds))
            med = {k: statistics.median(v) for k, v in runs.items()}
            added = {k: med[k] - med["none"] for k in ("ebpf-run", "bpftrace")}
            results[case] = {
                "baseline_ns": round(med["none"], 1),
                "ebpf_run_added_ns": round(added["ebpf-run"], 1),
                "bpftrace_added_ns": round(added["bpftrace"], 1),
                "ratio": round(added["ebpf-run"] / added["bpftrace"], 2)
                if added["bpftrace"] > 0 else float("nan"),
            }
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'case':<6} {'baseline ns':>12} {'ebpf-run +ns':>13} {'bpftrace +ns':>13} "
              f"{'ratio':>6}")
        for case, r in results.items():
            print(f"{case:<6} {r['baseline_ns']:>12} {r['ebpf_run_added_ns']:>13} "
                  f"{r['bpftrace_added_ns']:>13} {r['ratio']:>6}")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("needs root (it loads BPF programs)", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
