"""Stacks as aggregation keys on real events: the kernel frames of a tracepoint are
bpftrace's `kstack` for the same events, frame for frame; the user frames of a program
built here name its functions innermost first; --folded and --flamegraph write them; and a
stack map too small for the stacks counts each failed capture as a loss while every event
is still counted."""

from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import List, Tuple

import pytest
from bpftrace_oracle import Bpftrace, needs_bpftrace
from harness import SLOW, Run

# Each event is a kill(self, SIGCHLD), which is ignored but still makes a
# signal:signal_generate event in the sender. Not a syscall tracepoint: those hand BPF the
# registers user space entered the kernel with (6.1 does), and a kernel stack taken from
# them is empty, bpftrace's as ours; signal_generate's are the kernel's own on every kernel.
# The syscall is made by inline asm in er_leaf itself: called through libc's kill(),
# whose code keeps no frame pointer, a frame-pointer walk would skip er_leaf (its return
# address is on the stack, not in the rbp chain). Modes: `calls N` makes N kills
# from er_leaf by way of er_middle and er_outer; `depths K` makes one from each recursion
# depth 0..K-1 (K distinct user stacks). Then it waits for a line on stdin, so that its
# mappings are there when the stacks are symbolized at the end of the run.
PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
static long self;

__attribute__((noinline)) void er_leaf(void) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"((long)SYS_kill), "D"(self), "S"((long)SIGCHLD)
                     : "rcx", "r11", "memory");
}
__attribute__((noinline)) void er_middle(int n) { for (int i = 0; i < n; i++) er_leaf(); }
__attribute__((noinline)) void er_outer(int n) { er_middle(n); }
__attribute__((noinline)) void er_recurse(int d) { if (d == 0) er_leaf(); else er_recurse(d - 1); }
int main(int argc, char **argv) {
    char line[16];
    int n = atoi(argv[2]);
    self = getpid();
    if (!fgets(line, sizeof line, stdin)) return 1;
    if (strcmp(argv[1], "calls") == 0)
        er_outer(n);
    else
        for (int d = 0; d < n; d++) er_recurse(d);
    printf("done\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin)) return 0;
    return 0;
}
"""

SPEC = """
name: stacks-test
{stacks}
aggregations:
  samples: {{kind: count, key: {key}}}
probes:
  signal:
    attach: {{tracepoint: "signal:signal_generate"}}
    do:
      - if: 'comm == "erstk" && args.pid == pid'  # its own kills, not its exit's SIGCHLD
        then: [{{aggregate: {{map: samples, key: {values}}}}}]
"""

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the workload makes its syscall in x86_64 asm")


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("stacks")
    (d / "erstk.c").write_text(PROGRAM)
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-o", str(d / "erstk"),
                    str(d / "erstk.c")], check=True)
    return d / "erstk"


class Workload:
    """The program, started paused: go() makes its calls, release() lets it exit."""

    def __init__(self, program: Path, mode: str, n: int):
        self.proc = subprocess.Popen([str(program), mode, str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def go(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == "done\n"

    def release(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        self.proc.wait(10)


def _spec(tmp_path: Path, key: str, values: str, stacks: str = "") -> str:
    path = tmp_path / "stacks.yaml"
    path.write_text(SPEC.format(key=key, values=values, stacks=stacks))
    return str(path)


def _stack_entries(lines: List[str], head: str) -> List[Tuple[List[str], int]]:
    """`head[` frame lines `]: N` blocks of a bpftrace-style dump -> (frames, N)."""
    out = []
    frames: List[str] = []
    inside = False
    for ln in lines:
        if ln == head + "[":
            inside, frames = True, []
        elif inside and ln.startswith("    "):
            frames.append(ln.strip())
        elif inside and ln.startswith("]: "):
            out.append((frames, int(ln[3:])))
            inside = False
    return out


def _run_calls(program: Path, spec: str, n: int, *extra: str) -> Run:
    work = Workload(program, "calls", n)
    try:
        with Run(spec, *extra) as run:
            run.wait_ready()
            work.go()
            assert run.stop() == 0
    finally:
        work.release()  # after the run's dump: its mappings were there to read
    return run


@needs_bpftrace
def test_kernel_frames_are_bpftraces_kstack_for_the_same_events(tmp_path, program):
    spec = _spec(tmp_path, "{kstack: kstack}", "{kstack: kstack}")
    oracle = Bpftrace('tracepoint:signal:signal_generate /comm == "erstk" && args->pid == pid/ '
                      '{ @[kstack] = count(); }')
    try:
        run = _run_calls(program, spec, 50)
    finally:
        theirs = oracle.stop()
    ours = _stack_entries(run.out, "@samples")
    bt = _stack_entries(theirs, "@")
    assert [n for _, n in ours] == [50], run.out
    assert ours == bt, (ours, theirs)
    assert any(f.startswith("entry_SYSCALL_64") for f in ours[0][0])  # real kernel names


def test_user_frames_name_the_programs_functions_innermost_first(tmp_path, program):
    spec = _spec(tmp_path, '{kstack: kstack, ustack: ustack, comm: "char[16]"}',
                 "{kstack: kstack, ustack: ustack, comm: comm}")
    run = _run_calls(program, spec, 20, "--json")
    records = [r for r in run.json() if r.get("type") == "map"]
    assert len(records) == 1, records
    key = records[0]["key"]
    assert records[0]["value"] == 20 and key["comm"] == "erstk"
    names = [f.split("+")[0] for f in key["ustack"]]
    assert names[:4] == ["er_leaf", "er_middle", "er_outer", "main"], key["ustack"]
    assert key["kstack"] and all(isinstance(f, str) for f in key["kstack"])


def test_a_process_that_exits_before_the_dump_still_has_its_frames_named(tmp_path, program):
    # The program sends the pid the first time it takes a ustack; ebpf-run reads the
    # process's mappings then (it wakes on the record at once). The process lives a second
    # after its calls (five in the slower VM), then exits, before the run's dump.
    spec = _spec(tmp_path, '{ustack: ustack, comm: "char[16]"}', "{ustack: ustack, comm: comm}")
    work = Workload(program, "calls", 10)
    try:
        with Run(spec, "--json") as run:
            run.wait_ready()
            work.go()
            time.sleep(SLOW)
            work.release()
            assert work.proc.returncode == 0
            assert run.stop() == 0
    finally:
        work.release()
    (record,) = [r for r in run.json() if r.get("type") == "map"]
    names = [f.split("+")[0] for f in record["key"]["ustack"]]
    assert record["value"] == 10 and names[:4] == ["er_leaf", "er_middle", "er_outer", "main"]


def test_folded_and_flamegraph_files_hold_the_stacks(tmp_path, program):
    spec = _spec(tmp_path, '{kstack: kstack, ustack: ustack, comm: "char[16]"}',
                 "{kstack: kstack, ustack: ustack, comm: comm}")
    folded, svg = tmp_path / "out.folded", tmp_path / "out.svg"
    _run_calls(program, spec, 30, "--folded", str(folded), "--flamegraph", str(svg))
    lines = folded.read_text().splitlines()
    assert len(lines) == 1, lines
    path, count = lines[0].rsplit(" ", 1)
    names = [n.split("+")[0] for n in path.split(";")]
    assert count == "30" and names[0] == "erstk"
    user = names[1:names.index(next(n for n in names if n.endswith("_[k]")))]
    assert user[-4:] == ["main", "er_outer", "er_middle", "er_leaf"], path
    assert names[-1].endswith("_[k]")
    drawing = svg.read_text()
    assert drawing.startswith("<?xml") and drawing.rstrip().endswith("</svg>")
    for name in ("erstk", "main", "er_outer", "er_middle", "er_leaf"):
        assert name in drawing


def test_a_full_stack_map_counts_lost_captures_and_keeps_every_sample(tmp_path, program):
    # One entry: the first stack fills the map; each other distinct stack finds its hash
    # slot taken (-EEXIST): lost, and its sample counted under [lost stack].
    depths = 40
    spec = _spec(tmp_path, "{ustack: ustack}", "{ustack: ustack}", "stacks: {entries: 1}")
    work = Workload(program, "depths", depths)
    try:
        with Run(spec, "--json") as run:
            run.wait_ready()
            work.go()
            assert run.stop() == 0
    finally:
        work.release()
    records = run.json()
    samples = {tuple(r["key"]["ustack"]): r["value"] for r in records if r.get("type") == "map"}
    summary = next(r for r in records if r.get("type") == "summary")
    lost = sum(x["count"] for x in summary["lost"] if x["channel"] == "stacks")
    assert samples.pop(("[lost stack]",)) == lost == depths - 1, (samples, summary)
    (kept, n), = samples.items()  # the one stack the map holds, from depth 0
    assert n == 1 and [f.split("+")[0] for f in kept[:2]] == ["er_leaf", "er_recurse"]
    assert "stacks: 39 lost" in "\n".join(run.err)
