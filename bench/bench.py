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
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import peers
from harness import (
    COLD_CACHE,
    FULL,
    OUT,
    PIN,
    QUICK,
    Result,
    bench_programs,
    build_loadgen,
    check_same_text,
    cpu_rate,
    ladder,
    startup,
    stop_all,
    workload,
)
from report import fmt_rate, report
from variants import bcc_variant, ebpf_run_variant, peer_variants


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
                          saved["config"], saved.get("aggregations"), saved.get("profile"))
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
    profile: Optional[dict] = None
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
        profile = peers.profile_figures(1.0 if args.quick else 2.0, cfg["reps"], say)
    except KeyboardInterrupt:
        say("interrupted: stopping the tools")
        return 130
    finally:
        stop_all()
        OUT.mkdir(exist_ok=True)
        dest = args.json or OUT / "last.json"
        dest.write_text(json.dumps({"config": cfg, "variants": names,
                                    "results": [asdict(r) for r in results],
                                    "aggregations": aggregations, "profile": profile},
                                   indent=1))
        left = {i: n for i, n in bench_programs().items() if i not in before}
        say("left attached: " + (", ".join(f"{i} {n}" for i, n in left.items()) or "nothing")
            + f"; every measurement in {dest}")
    print(f"ebpf-run vs hand-written BCC: getppid tracepoint, 48-byte events, 256-page ring "
          f"buffer, text to /dev/null; {cfg['reps']} repetitions, medians; ladder steps "
          f"{cfg['seconds']:g} s, workload {cfg['workload_seconds']:g} s at full speed; "
          f"CPU/event compared at {fmt_rate(cpu_rate(cfg))}/s; "
          + ("tool and generator pinned to CPUs 0 and 1" if PIN else "unpinned"))
    print(report(results, names, cfg, aggregations, profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
