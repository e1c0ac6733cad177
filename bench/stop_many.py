"""bench/stop_many: how long a run with many probes takes to stop (SIGINT to exit).

For each count N (default 100 and 1,000), a spec of N tracepoint probes with empty
programs (syscall tracepoints first, then quiet ones) is run until ready, then stopped
with SIGINT; printed: the time from spawn to ready and from SIGINT to exit (median of
--reps). A figure, not a pass/fail: bench/README.md gives the ones measured.

    bench/stop_many [--probes 100,1000] [--reps 3] [--tree DIR] [--no-warm-up]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parent.parent
# Tracepoints hit so often that even an empty program would cost the machine something.
BUSY = ("sched:", "irq:", "timer:", "lock:", "rcu:", "workqueue:", "kmem:", "mmap_lock",
        "page", "rseq:", "raw_syscalls:", "ipi:", "irq_vectors:", "tlb:", "sock:", "net:")


def tracepoints(n: int, but: str = "") -> List[str]:
    """n tracepoints of this kernel (never `but`), syscalls first, then quiet ones."""
    events = Path("/sys/kernel/tracing/available_events").read_text().split()
    syscalls = sorted(e for e in events if e.startswith("syscalls:"))
    rest = sorted(e for e in events if not e.startswith(("syscalls:", *BUSY)))
    # ("ready" in a name would end a wait for the ready line early: tests/harness.py)
    tps = [e for e in syscalls + rest if e != but and "ready" not in e][:n]
    if len(tps) < n:
        sys.exit(f"stop_many: this kernel offers {len(tps)} tracepoints, not {n}")
    return tps


def spec(n: int) -> str:
    lines = [f"name: stop-many-{n}", "probes:"]
    for i, tp in enumerate(tracepoints(n)):
        lines += [f"  p{i}:", f'    attach: {{tracepoint: "{tp}"}}', "    do: []"]
    return "\n".join(lines) + "\n"


def once(path: Path, tree: Path) -> Tuple[float, float]:
    """(spawn to ready, SIGINT to exit) of one run, in seconds."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "runner", str(path)], cwd=tree,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    err = []
    for line in proc.stderr:
        err.append(line)
        if line.startswith("ebpf-run: ready"):
            break
    else:
        proc.wait()
        sys.exit("stop_many: the run ended before it was ready:\n" + "".join(err[-5:]))
    ready = time.monotonic()
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    rc = proc.wait()
    stopped = time.monotonic()
    if rc != 0 or "summary:" not in rest:
        sys.exit(f"stop_many: exit {rc}:\n{rest[-2000:]}")
    return ready - start, stopped - ready


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/stop_many", description=__doc__.splitlines()[0])
    p.add_argument("--probes", default="100,1000", help="comma-separated probe counts")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--tree", type=Path, default=ROOT, help="the ebpf-run tree to measure")
    p.add_argument("--no-warm-up", action="store_true",
                   help="no unmeasured first run (the compile is cached already)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stop-many-") as tmp:
        for n in (int(x) for x in args.probes.split(",")):
            path = Path(tmp) / f"many-{n}.yaml"
            path.write_text(spec(n))
            if not args.no_warm_up:
                once(path, args.tree)  # the compile, cached for the runs measured
            runs = [once(path, args.tree) for _ in range(args.reps)]
            ready = statistics.median(r for r, _ in runs)
            stop = statistics.median(s for _, s in runs)
            print(f"stop: {n} probes: SIGINT to exit {stop:.2f} s (median of {args.reps}; "
                  f"ready after {ready:.2f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
