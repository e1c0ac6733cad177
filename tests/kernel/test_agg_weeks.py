"""Aggregations over weeks of running (issue 24): a pid-keyed aggregation that evicts idle
keys keeps seeing new processes after ten times its map size have come and gone (and
syscount-process itself after 100,000), and a second signal cuts a long final aggregation
dump short."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import threading
import time
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from getppid import Generator
from harness import ROOT, SLOW, SPECS, Run

# syscount-process keeps 10,240 keys and the issue asks for 100,000 processes: the same
# ratio (10 processes per entry) at a size CI affords (half of it in the emulated VM).
# EBPF_RUN_EVICT_ENTRIES=10240 runs the figure by hand.
ENTRIES = int(os.environ.get("EBPF_RUN_EVICT_ENTRIES",
                             "512" if os.environ.get("EBPF_RUN_VM") == "1" else "1024"))
PROCESSES = 10 * ENTRIES
BATCH = ENTRIES // 2
MAGIC = 2125315823  # getpgid() of a pid above any pid_max: nothing else on the machine asks
CALLS = 3
LAST_CALLS = 7

# Forks N children per line "N CALLS" on stdin, each calling getpgid(MAGIC) CALLS times,
# waits for them and prints their pids on one line.
FORKER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    int n, calls;
    while (scanf("%d %d", &n, &calls) == 2) {
        pid_t *pids = malloc(sizeof(pid_t) * n);
        for (int i = 0; i < n; i++) {
            pid_t p = fork();
            if (p < 0) return 1;
            if (p == 0) {
                for (int c = 0; c < calls; c++) syscall(SYS_getpgid, MAGIC);
                _exit(0);
            }
            pids[i] = p;
        }
        for (int i = 0; i < n; i++) waitpid(pids[i], NULL, 0);
        for (int i = 0; i < n; i++) printf("%d%c", pids[i], i + 1 < n ? ' ' : '\n');
        fflush(stdout);
        free(pids);
    }
    return 0;
}
"""

EVICT_SPEC = f"""\
name: evict-by-pid
aggregations:
  by_pid:
    kind: count
    key: {{pid: u32}}
    every: 0.05
    clear: true
    max_entries: {ENTRIES}
  marker:            # printed at every dump: the test's clock
    kind: count
    every: 0.05
probes:
  calls:
    attach: {{tracepoint: "syscalls:sys_enter_getpgid"}}
    do:
      - if: "args.pid == {MAGIC}"
        then:
          - aggregate: {{map: by_pid, key: {{pid: pid}}}}
          - aggregate: {{map: marker}}
"""


def forker(tmp_path) -> subprocess.Popen:
    cc = shutil.which("cc") or shutil.which("clang")
    assert cc, "a C compiler (scripts/setup installs clang)"
    src, exe = tmp_path / "forker.c", tmp_path / "forker"
    src.write_text(FORKER.replace("MAGIC", str(MAGIC)))
    subprocess.run([cc, "-O2", "-o", str(exe), str(src)], check=True)
    return subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


class Dumps:
    """The JSON records the run printed, parsed as they come."""

    def __init__(self, run: Run):
        self.run = run
        self.records: List[dict] = []

    def update(self) -> List[dict]:
        for line in self.run.out[len(self.records):]:
            self.records.append(json.loads(line))
        return self.records

    def counts(self, since: int) -> Dict[int, int]:
        out: Dict[int, int] = {}
        for r in self.records[since:]:
            if r.get("map") == "by_pid":
                out[r["key"]["pid"]] = out.get(r["key"]["pid"], 0) + r["value"]
        return out

    def wait_counted(self, pids: List[int], since: int) -> None:
        """Until every pid's calls were dumped and two more dumps of both aggregations
        followed: the second of them found the pids idle and evicted them."""
        wanted = dict(pids)

        def done() -> bool:
            recs = self.update()
            seen = self.counts(since)
            if any(seen.get(p, 0) < calls for p, calls in wanted.items()):
                return False
            last = max(i for i, r in enumerate(recs) if r.get("map") == "by_pid"
                       and r["key"]["pid"] in wanted)
            return sum(r.get("map") == "marker" for r in recs[last:]) >= 3
        self.run.wait_for(done, 120, f"the dumps of {len(pids)} processes")


def batch(proc: subprocess.Popen, n: int, calls: int) -> List[Tuple[int, int]]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{n} {calls}\n")
    proc.stdin.flush()
    return [(int(p), calls) for p in proc.stdout.readline().split()]


def test_a_pid_keyed_aggregation_sees_a_new_process_after_ten_map_sizes_came_and_went(
        tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(EVICT_SPEC)
    work = forker(tmp_path)
    try:
        with Run(str(spec), "--json") as run:
            run.wait_ready()
            dumps = Dumps(run)
            for _ in range(PROCESSES // BATCH):
                since = len(dumps.update())
                pids = batch(work, BATCH, CALLS)
                dumps.wait_counted(pids, since)
                assert dumps.counts(since) == dict(pids)  # each exact, nothing else
            since = len(dumps.update())
            ((last, _),) = pids = batch(work, 1, LAST_CALLS)
            dumps.wait_counted(pids, since)
            assert run.stop(signal.SIGINT) == 0
    finally:
        assert work.stdin is not None
        work.stdin.close()
        work.wait(30)
    records = dumps.update()
    assert dumps.counts(since) == {last: LAST_CALLS}
    (summary,) = [r for r in records if r.get("type") == "summary"]
    assert summary["lost"] == [], summary
    evicted = summary["channels"]["by_pid"]["evicted"]
    assert PROCESSES <= evicted <= PROCESSES + 1, summary
    assert any(f"{evicted} idle keys evicted" in ln for ln in run.err), run.err


BIG_SPEC = """\
name: big-final-dump
maps:
  first: {{type: hash, key: u32, value: u64}}
aggregations:
  calls:
    kind: count
    key: {{t: u64}}
    max_entries: {n}
probes:
  calls:
    attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
    do:
      - if: "pid == {pid}"
        then:
          - count: {{map: first, key: pid}}
          - aggregate: {{map: calls, key: {{t: ktime}}}}
output:
  - map: first
    format: "first {{key}}: {{value}}"
"""


def test_a_second_sigint_cuts_the_final_aggregation_dump_short(tmp_path):
    """A key per call: the aggregation's dump at exit reads 300,000 keys (seconds). The map
    dumped at exit just before it says when it begins; a second SIGINT then cuts it."""
    n = 300_000
    gen = Generator(n)
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(BIG_SPEC.format(n=n, pid=gen.pid)))
    try:
        with Run(str(spec)) as run:
            run.wait_ready()
            gen.go()
            run.proc.send_signal(signal.SIGINT)
            run.wait_output(lambda out: f"first {gen.pid}: {n}" in out, 60,
                            "the map dump at exit")
            assert run.stop(signal.SIGINT) == 0
    finally:
        gen.end()
    assert not any(ln.startswith("@calls") for ln in run.out), run.out[:5]
    assert any("aggregation dump cut short by a signal (map calls: stopped after" in ln
               for ln in run.err), run.err
    (summary,) = [ln for ln in run.err if "summary:" in ln]
    assert "calls: 0 dumps, the one at exit cut short by a signal" in summary, summary



# The issue's own figure, with the real tool: 100,000 processes, ten times the 10,240 keys
# of syscount-process's map, then one more that must be counted exactly.
STORM = 100_000
STORM_CALLS = 100_000  # the last child's getpgid calls: among the 10 busiest of its second


def forkstorm(tmp_path) -> Path:
    exe = tmp_path / "forkstorm"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "tests" / "workloads" /
                                                     "forkstorm.c")], check=True)
    return exe


def next_dump(run: Run) -> None:
    """Until the run prints its next dump (its first line): the interval that follows has
    just begun."""
    before = len(run.out)
    run.wait_for(lambda: len(run.out) > before, 30 * SLOW, "the next dump")


def workload_line(work: subprocess.Popen, timeout: float) -> str:
    assert work.stdout is not None
    line: List[str] = []
    reader = threading.Thread(target=lambda: line.append(work.stdout.readline()))
    reader.start()
    reader.join(timeout)
    assert line, f"the workload printed nothing in {timeout} s"
    return line[0].strip()


# 100,000 forks take about 20 s here with the tool tracing every system call; ten times
# that under the VM's emulation, where the scaled-down test above covers the eviction.
@pytest.mark.host_only
def test_syscount_process_sees_the_last_of_100000_short_lived_processes(tmp_path):
    # Before, syscount-process's map filled with dead pids after 10,240 processes and new
    # ones were "lost (map full)" for good (issue 24).
    work = subprocess.Popen([str(forkstorm(tmp_path)), str(STORM), str(STORM_CALLS)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert work.stdin is not None
    try:
        with Run(str(SPECS / "tools" / "syscount-process.yaml"), "--json") as run:
            run.wait_ready()
            start = time.monotonic()
            work.stdin.write("\n")
            work.stdin.flush()
            assert workload_line(work, 600 * SLOW) == f"forked {STORM}"
            storm = time.monotonic() - start
            for _ in range(3):  # the storm's keys are idle for a whole interval: evicted
                next_dump(run)
                time.sleep(0.2)  # past the rest of that dump's lines
            next_dump(run)
            work.stdin.write("\n")  # its calls in one interval, counted in one dump
            work.stdin.flush()
            words = workload_line(work, 60 * SLOW).split()
            assert words[0] == "last", words
            last = {"pid": int(words[1]), "comm": "er-last-child"}

            def mine() -> List[int]:
                return [r["value"] for r in map(json.loads, run.out)
                        if r.get("map") == "by_process" and r["key"] == last]
            run.wait_for(mine, 30 * SLOW, "the last child's count")
            next_dump(run)
            assert run.stop(signal.SIGINT) == 0
    finally:
        work.stdin.close()
        work.wait(60)
    assert mine() == [STORM_CALLS + 1]  # its getpgid calls and its exit_group
    (summary,) = [r for r in map(json.loads, run.out) if r.get("type") == "summary"]
    print(f"{STORM} processes forked in {storm:.1f} s under syscount-process; "
          f"evicted {summary['channels']['by_process']['evicted']}, lost {summary['lost']}")
    assert summary["channels"]["by_process"]["evicted"] > 10_240, summary
