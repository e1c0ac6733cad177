"""The stack tools of specs/tools on workloads whose answer is known: profile.yaml samples
tests/workloads/spin31.c, which spends 3/4 of its CPU in er_hot_three and 1/4 in
er_cold_one, and names both with the share its CPU time says, as bpftrace's profile does
at the same time; stackcount.yaml counts the wake-ups of a child's exit on exactly
bpftrace's kernel stacks for the same events."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Tuple

import pytest
from bpftrace_oracle import Bpftrace, needs_bpftrace, stack_counts
from harness import ROOT, Run

WORKLOADS = ROOT / "tests" / "workloads"
TOOLS = ROOT / "specs" / "tools"
CPU_SECONDS = 3.0  # of sampling: about 300 samples at 99 Hz

Stacks = List[Tuple[Tuple[str, ...], int]]  # (user frames innermost first, count)


@pytest.fixture(scope="module")
def spin31(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("stack-tools") / "spin31"
    subprocess.run(["cc", "-O0", "-fno-omit-frame-pointer", "-o", str(exe),
                    str(WORKLOADS / "spin31.c")], check=True)
    return exe


def functions(frames: Iterable[str]) -> Tuple[str, ...]:
    """Frame names without their offsets (`er_hot_three+29` -> `er_hot_three`): the two
    tools' offsets are the same, but a sample's place in the function is chance."""
    return tuple(f.rsplit("+", 1)[0] for f in frames)


def leaf_counts(stacks: Stacks) -> Counter:
    """Samples per innermost user function."""
    out: Counter = Counter()
    for frames, n in stacks:
        out[frames[0].rsplit("+", 1)[0] if frames else ""] += n
    return out


def assert_three_to_one(stacks: Stacks, who: str) -> None:
    leaves = leaf_counts(stacks)
    hot, cold, total = leaves["er_hot_three"], leaves["er_cold_one"], sum(leaves.values())
    # The rest is the loop in main and its clock_gettime, a few samples.
    assert hot + cold >= 0.9 * total, (who, leaves)
    # Each sample lands in er_hot_three with probability 3/4, independently: the workload
    # calls er_cold_one at a random place in each round of four (~0.5 ms a round, 10 ms
    # between samples), so the sampling clock cannot lock onto its order. The share is
    # binomial: at n ~ 300 its standard deviation is sqrt(0.75 * 0.25 / n) ~ 0.025, and 4
    # of them (0.65..0.85, a ratio of 1.9..5.7) fail about once in 15,000 runs, while an
    # even split (0.5) or the names swapped (0.25) are far outside.
    n = hot + cold
    share, sigma = hot / n, math.sqrt(0.75 * 0.25 / n)
    assert abs(share - 0.75) <= 4 * sigma, (who, hot, cold, share, sigma)


def our_stacks(run: Run, pid_comm: str) -> Stacks:
    return [(tuple(r["key"]["ustack"]), r["value"]) for r in run.json()
            if r.get("type") == "map" and r["key"]["comm"] == pid_comm]


@needs_bpftrace
def test_profile_names_both_functions_three_to_one_as_bpftrace_does(spin31):
    work = subprocess.Popen([str(spin31), str(CPU_SECONDS)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert work.stdin is not None and work.stdout is not None
    try:
        oracle = Bpftrace(f"profile:hz:99 /pid == {work.pid}/ {{ @[ustack, comm] = count(); }}")
        try:
            with Run(str(TOOLS / "profile.yaml"), "--json", "--set",
                     f"pid={work.pid}") as run:
                run.wait_ready()
                work.stdin.write("go\n")
                work.stdin.flush()
                used = float(work.stdout.readline().split()[0])
                # Stopped while the workload lives: both name its frames from its mappings.
                assert run.stop() == 0
                ours = our_stacks(run, "spin31")
        finally:
            theirs = [(stacks[0], n) for stacks, comm, n in stack_counts(oracle.stop())
                      if comm == "spin31"]
    finally:
        work.communicate()
    # 99 samples a second of its CPU (as test_sampling.py checks in more detail).
    assert 0.7 * used * 99 <= sum(n for _, n in ours) <= 1.3 * used * 99, ours
    assert_three_to_one(ours, "ebpf-run")
    assert_three_to_one(theirs, "bpftrace")
    # The same top frames: the busiest stacks, by function, are the same two, in order,
    # from the sampled function out to libc's start.
    top = [stack for stack, _ in top_paths(ours)[:2]]
    assert top == [stack for stack, _ in top_paths(theirs)[:2]], (top_paths(ours),
                                                                   top_paths(theirs))
    assert top == [("er_hot_three", "main", "__libc_start_call_main"),
                   ("er_cold_one", "main", "__libc_start_call_main")]


def top_paths(stacks: Stacks) -> List[Tuple[Tuple[str, ...], int]]:
    paths: Dict[Tuple[str, ...], int] = Counter()
    for frames, n in stacks:
        paths[functions(frames)] += n
    return sorted(paths.items(), key=lambda kv: -kv[1])


@needs_bpftrace
def test_stackcount_counts_wakeups_on_bpftraces_kernel_stacks(tmp_path):
    # A sleep under a name of its own: its exit wakes the shell waiting for it, with the
    # exiting child as the current task. Three times: a shell that has not reached its
    # wait yet when the child exits (a busy machine) is not woken.
    child = tmp_path / "erwake"
    shutil.copy("/bin/sleep", child)
    oracle = Bpftrace('tracepoint:sched:sched_waking /comm == "erwake"/ '
                      '{ @[kstack, comm] = count(); }')
    try:
        with Run(str(TOOLS / "stackcount.yaml"), "--json") as run:
            run.wait_ready()
            subprocess.run(["sh", "-c", f"for i in 1 2 3; do {child} 0.1 & wait; done"],
                           check=True)
            assert run.stop() == 0
            ours = sorted((tuple(r["key"]["kstack"]), r["value"]) for r in run.json()
                          if r.get("type") == "map" and r["key"]["comm"] == "erwake")
    finally:
        theirs = sorted((stacks[0], n) for stacks, comm, n in stack_counts(oracle.stop())
                        if comm == "erwake")
    assert_same_stacks_but_losses(ours, theirs)
    assert any("do_exit" in functions(stack) for stack, _ in ours), ours


def assert_same_stacks_but_losses(ours, theirs):
    """Both tools saw the same events, and each stack has bpftrace's count, except where a
    tool could not capture one: a stack map keeps one stack per hash bucket, so on a busy
    machine (the 6.1 VM: the whole machine's wakeups go through it) a stack of ours can meet
    another in its bucket. We count that as a loss and show it as [lost stack]; bpftrace's
    failed captures print as an empty stack. A difference per stack is at most the losses."""
    lost = sum(n for stack, n in ours if stack == ("[lost stack]",))
    their_lost = sum(n for stack, n in theirs if stack == ())
    ours_by = {stack: n for stack, n in ours if stack != ("[lost stack]",)}
    theirs_by = {stack: n for stack, n in theirs if stack != ()}
    assert sum(ours_by.values()) + lost == sum(theirs_by.values()) + their_lost, (ours, theirs)
    for stack in set(ours_by) | set(theirs_by):
        mine, its = ours_by.get(stack, 0), theirs_by.get(stack, 0)
        assert its - lost <= mine <= its + their_lost, (stack, mine, its, lost, their_lost)
    if not lost and not their_lost:
        assert ours == theirs
