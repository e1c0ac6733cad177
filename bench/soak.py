"""bench/soak: ebpf-run under a long steady load, and its zero-loss rate per buffer size.

    bench/soak [--minutes M] [--rate R] [--ladder 1M,1.5M,2M,2.5M,3M] [--seconds S]

1. Soak: the load generator (bench/loadgen.c, uid 4242) makes a known number of getppid()
   calls at RATE for MINUTES; ebpf-run (bench/getppid.yaml: one 48-byte event per call
   through the default 256-page ring buffer, text to /dev/null) must account for every one:
   received + lost == generated. Its resident memory is read when ready, every 10 s, and at
   the end; it must not grow.
2. Zero-loss rate per buffer size: the same spec with the default 256 pages and with 4096
   pages, each stepped through the ladder's rates (S seconds each); the highest step with
   nothing lost and received == generated is reported.

Every number comes from the run itself; nothing here is a timed test.
"""

from __future__ import annotations

import argparse
import re
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BENCH, BUILD, ROOT, Tool, Variant, build_loadgen, loadgen, stop_all
from variants import parse_ebpf_run

from bench import parse_rate  # scripts beside this one


def spec_variant(pages: int) -> Variant:
    spec = BENCH / "getppid.yaml"
    if pages != 256:
        text = spec.read_text().replace("pages: 256", f"pages: {pages}")
        spec = BUILD / f"getppid-{pages}.yaml"
        spec.write_text(text)
    return Variant(f"ebpf-run/{pages}p", (str(ROOT / ".venv" / "bin" / "ebpf-run"), str(spec)),
                   "ebpf-run: ready", parse_ebpf_run)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def soak(minutes: float, rate: float) -> bool:
    tool = Tool(spec_variant(256))
    tool.wait_ready()
    samples: List[Tuple[float, int]] = [(0.0, rss_kib(tool.proc.pid))]
    done = threading.Event()

    def sample() -> None:
        start = time.monotonic()
        while not done.wait(10):
            samples.append((time.monotonic() - start, rss_kib(tool.proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    calls, achieved, _, _ = loadgen(rate, minutes * 60)
    tool.settle()
    done.set()
    sampler.join(5)
    samples.append((minutes * 60, rss_kib(tool.proc.pid)))
    got = parse_ebpf_run(tool.stop())
    received, lost = got if got else (-1, -1)
    ok = received + lost == calls
    print(f"soak: {minutes:g} min at {achieved / 1e3:.0f}k calls/s: generated {calls:,}, "
          f"received {received:,}, lost {lost:,}, gap {calls - received - lost:,} "
          f"({'every event accounted for' if ok else 'NOT accounted for'})")
    first, last = samples[0][1], samples[-1][1]
    peak = max(kib for _, kib in samples)
    print(f"soak: RSS {first:,} KiB when ready, {last:,} KiB at the end, peak {peak:,} KiB "
          f"({len(samples)} samples, every 10 s)")
    return ok


def ladder(pages: int, rates: Sequence[float], seconds: float) -> Optional[float]:
    best: Optional[float] = None
    for rate in rates:
        tool = Tool(spec_variant(pages))
        tool.wait_ready()
        calls, achieved, _, _ = loadgen(rate, seconds)
        tool.settle()
        got = parse_ebpf_run(tool.stop())
        received, lost = got if got else (-1, -1)
        clean = lost == 0 and received == calls and achieved >= 0.95 * rate
        print(f"ladder {pages:>5} pages: offered {rate / 1e6:.2f}M/s achieved "
              f"{achieved / 1e6:.2f}M/s: received {received:,} lost {lost:,} of {calls:,}"
              f"{'' if clean else '  <- loss or shortfall'}")
        if not clean:
            break
        best = rate
    return best


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench/soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--rate", type=parse_rate, default=parse_rate("500k"))
    p.add_argument("--ladder", default="1M,1.5M,2M,2.5M,3M")
    p.add_argument("--seconds", type=float, default=3.0, help="per ladder step")
    args = p.parse_args(argv)
    build_loadgen()
    try:
        ok = soak(args.minutes, args.rate)
        rates = [parse_rate(x) for x in re.split(r"[, ]+", args.ladder) if x]
        for pages in (256, 4096):
            best = ladder(pages, rates, args.seconds)
            shown = f"{best / 1e6:.2f}M/s" if best else f"below {rates[0] / 1e6:.2f}M/s"
            print(f"zero-loss rate with {pages} pages ({pages * 4 // 1024} MiB): {shown}")
    finally:
        stop_all()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
