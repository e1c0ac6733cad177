"""bench/run's other peers: the book's perf-buffer BCC consumer, ebpf-run on a perf buffer,
bpftrace, and ebpf-run with every cache off (a cold start).

bpftrace prints its events and its "Lost N events" lines on stdout and has no summary, so
its stdout is read by the bench in large chunks (bytes.count per chunk, no per-line work)
and the counts become a summary line of the same shape as the BCC side's.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple

BENCH = Path(__file__).resolve().parent
EVENT_END = b" loadgen\n"  # every event line ends with the generator's comm
LOST_RE = re.compile(rb"Lost (\d+) events")
BPFTRACE = shutil.which("bpftrace") or "/usr/bin/bpftrace"


def parse_bpftrace(err: str) -> Optional[Tuple[int, int]]:
    m = re.search(r"bpftrace: summary: (\d+) received; (\d+) lost", err)
    return (int(m.group(1)), int(m.group(2))) if m else None


class StdoutCounter:
    """Reads a tool's stdout: its ready line, event lines and lost lines, optionally
    saving what it read (the text check)."""

    def __init__(self, stream: IO[bytes], ready: bytes, on_ready: Callable[[], None],
                 save: Optional[IO[bytes]] = None):
        self.stream, self.ready, self.on_ready, self.save = stream, ready, on_ready, save
        self.events = self.lost = 0
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        carry, seen_ready = b"", False
        while chunk := self.stream.read1(1 << 20):  # type: ignore[attr-defined]
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            done, carry = data[:cut], data[cut:]
            if not seen_ready and self.ready in done:
                seen_ready = True
                self.on_ready()
                if self.save is not None:  # only events in the saved text
                    done = done.split(self.ready, 1)[1]
            self.events += done.count(EVENT_END)
            if b"Lost" in done:
                self.lost += sum(int(n) for n in LOST_RE.findall(done))
            if self.save is not None and seen_ready:
                self.save.write(done)

    def summary(self, timeout: float) -> str:
        self.thread.join(timeout)
        return f"bpftrace: summary: {self.events} received; {self.lost} lost"


def bpftrace_argv() -> Tuple[str, ...]:
    return (BPFTRACE, str(BENCH / "getppid.bt"))


def has_bpftrace() -> bool:
    return Path(BPFTRACE).exists()


AGGREGATIONS = BENCH / "bpftrace_agg.py"  # the count and histogram rows (another file)


def aggregation_ratios(seconds: float, rounds: int,
                       say: Callable[[str], None]) -> Dict[str, Optional[float]]:
    """probe-cost-count and probe-cost-hist (ebpf-run / bpftrace, added ns per call) from
    bench/bpftrace_agg.py when it is there; {} (the report prints n/a) when it is not or
    it fails."""
    if not AGGREGATIONS.exists() or not has_bpftrace():
        return {}
    rows = _json_line(AGGREGATIONS, "aggregations", seconds, rounds, 600, say)
    if rows is None:
        return {}
    got: Dict[str, Optional[float]] = {}
    for case in ("count", "hist"):
        r = rows.get(case, {}).get("ratio") if isinstance(rows, dict) else None
        got[f"probe-cost-{case}"] = r if isinstance(r, (int, float)) and math.isfinite(r) \
            else None
    return got


PROFILE = BENCH / "profile_bench.py"  # the profile rows (another file)


def profile_figures(seconds: float, rounds: int, say: Callable[[str], None]) -> Optional[dict]:
    """bench/profile_bench.py's figures (its --json line), or None (the report prints n/a)
    when bpftrace is missing or it fails."""
    if not has_bpftrace():
        return None
    figures = _json_line(PROFILE, "profile", seconds, rounds, 1200, say)
    return figures if isinstance(figures, dict) else None


def _json_line(script: Path, what: str, seconds: float, rounds: int, timeout: float,
               say: Callable[[str], None]) -> Any:
    """The last line of `script --json --seconds S --rounds N`, parsed; None when it
    fails (said on stderr)."""
    say(f"{what}: {script.name} --seconds {seconds:g} --rounds {rounds}")
    try:
        out = subprocess.run(
            [sys.executable, str(script), "--json", "--seconds", str(seconds),
             "--rounds", str(rounds)], capture_output=True, text=True, check=True,
            timeout=timeout).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as e:
        detail = getattr(e, "stderr", "") or ""
        say(f"{what} failed: {e} {detail.strip().splitlines()[-1:] or ''}")
        return None
