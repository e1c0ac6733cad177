"""Stacks as fields of events and user stacks stored in map values, on real events: every
kill of the workload of test_stacks.py (signal:signal_generate, whose kernel stack is the
kernel's own on every kernel) is one event whose kernel frames are bpftrace's `kstack` for
the same event, frame for frame, and whose user frames name the workload's functions,
innermost first; a user stack stored at the kill and counted when the process exits is
named after it has gone; and a stack map too small loses captures, counted, with every
event still received."""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import List

import pytest
from bpftrace_oracle import Bpftrace, needs_bpftrace
from harness import SLOW, Run
from test_stacks import Workload, program  # noqa: F401  (program: the workload's fixture)

EVENTS = """
name: event-stacks
{stacks}
structs:
  signalled:
    - pid: u32
    - kstack: kstack
    - ustack: "ustack[{depth}]"
maps:
  signals: {{type: {buffer}, value: signalled}}
probes:
  signal:
    attach: {{tracepoint: "signal:signal_generate"}}
    do:
      - if: 'comm == "erstk" && args.pid == pid'  # its own kills, not its exit's SIGCHLD
        then: [{{emit: {{to: signals, set: {{pid: pid, kstack: kstack, ustack: ustack}}}}}}]
"""

STORED = """
name: stored-ustack
structs:
  taken:
    - ustack: ustack
    - at: u64
maps:
  last_kill: {type: hash, key: u32, value: taken, max_entries: 1024}
aggregations:
  exits: {kind: count, key: {ustack: ustack, comm: "char[16]"}}
probes:
  signal:
    attach: {tracepoint: "signal:signal_generate"}
    do:
      - if: 'comm == "erstk" && args.pid == pid'
        then: [{store: {map: last_kill, key: pid, value: {ustack: ustack, at: ktime}}}]
  exit:
    attach: {tracepoint: "sched:sched_process_exit"}
    do:
      - if: 'comm == "erstk"'
        then:
          - let: {k: {lookup: {map: last_kill, key: pid}}}
          - aggregate: {map: exits, key: {ustack: k.ustack, comm: comm}}
"""

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64",
                                reason="the workload makes its syscall in x86_64 asm")

WORKLOAD_FRAMES = ["er_leaf", "er_middle", "er_outer", "main"]


def _spec(tmp_path: Path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return str(path)


def _events(run: Run) -> List[dict]:
    return [r["data"] for r in run.json() if r.get("type") == "event"]


def _printf_stacks(lines: List[str]) -> List[List[str]]:
    """bpftrace's `printf("S\\n%s\\nE\\n", kstack)` lines -> one frame list per event."""
    out, frames, inside = [], [], False
    for ln in lines:
        if ln == "S":
            inside, frames = True, []
        elif ln == "E" and inside:
            out.append(frames)
            inside = False
        elif inside and ln.strip():
            frames.append(ln.strip())
    return out


def _run_events(program: Path, spec: str, n: int, *extra: str) -> Run:  # noqa: F811
    work = Workload(program, "calls", n)
    try:
        with Run(spec, "--json", *extra) as run:
            run.wait_ready()
            work.go()
            # The process waits until its events are printed: its mappings are there.
            run.wait_output(lambda out: sum('"type": "event"' in ln for ln in out) >= n,
                            what=f"{n} events")
            assert run.stop() == 0
    finally:
        work.release()
    return run


@needs_bpftrace
@pytest.mark.parametrize("buffer", ["ringbuf", "perf_event_array"])
def test_each_event_has_bpftraces_kstack_and_the_workloads_user_frames(tmp_path, program,  # noqa: F811
                                                                      buffer):
    spec = _spec(tmp_path, EVENTS.format(stacks="", depth=8, buffer=buffer))
    oracle = Bpftrace('tracepoint:signal:signal_generate /comm == "erstk" && args->pid == pid/ '
                      '{ printf("S\\n%s\\nE\\n", kstack); }')
    try:
        run = _run_events(program, spec, 20)
    finally:
        theirs = _printf_stacks(oracle.stop())
    events = _events(run)
    assert len(events) == 20 and len({e["pid"] for e in events}) == 1, run.out
    assert [e["kstack"] for e in events] == theirs, (events, theirs)
    assert any(f.startswith("__x64_sys_kill") for f in theirs[0])  # real kernel names
    for e in events:
        names = [f.split("+")[0] for f in e["ustack"]]
        assert names[:4] == WORKLOAD_FRAMES and len(names) <= 8, e["ustack"]
        assert set(e) == {"pid", "kstack", "ustack"}  # the hidden pid is not shown
    summary = next(r for r in run.json() if r.get("type") == "summary")
    assert summary["lost"] == [] and summary["channels"]["signals"]["received"] == 20


def test_text_prints_each_frame_a_line_as_bpftraces_printf(tmp_path, program):  # noqa: F811
    spec = _spec(tmp_path, EVENTS.format(stacks="", depth=4, buffer="ringbuf").replace(
        "    - pid: u32\n", "").replace("pid: pid, ", ""))
    work = Workload(program, "calls", 2)
    try:
        with Run(spec) as run:
            run.wait_ready()
            work.go()
            run.wait_output(lambda out: sum(ln.startswith("kstack=") for ln in out) >= 2,
                            what="2 events")
            run.wait_output(lambda out: len([ln for ln in out if ln == ""]) >= 2,
                            what="the end of the second event")
            assert run.stop() == 0
    finally:
        work.release()
    first = run.out[:run.out.index("")]
    # The innermost kernel frame is the tracepoint's caller on 6.18 (__traceiter_...) and
    # another on 6.1: the kill syscall's own function is in both.
    assert first[0] == "kstack="
    at = first.index(" ustack=")
    assert all(ln.startswith("        ") and ln.strip() for ln in first[1:at] + first[at + 1:])
    assert any(ln.strip().startswith("__x64_sys_kill+") for ln in first[1:at]), first
    assert [ln.strip().split("+")[0] for ln in first[at + 1:]] == WORKLOAD_FRAMES
    assert run.out[len(first) + 1:2 * len(first) + 1] == first  # the same stacks again


def test_a_full_stack_map_loses_captures_and_every_event_arrives(tmp_path, program):  # noqa: F811
    # One entry per stack map (ustack[8] and kstack: two maps): the first user stack fills
    # its map; each other distinct one finds the slot taken (-EEXIST), is counted lost and
    # shown as [lost stack]. Every event's kernel stack is the same one: one id, no loss.
    depths = 12
    spec = _spec(tmp_path, EVENTS.format(stacks="stacks: {entries: 1}", depth=8,
                                         buffer="ringbuf"))
    work = Workload(program, "depths", depths)
    try:
        with Run(spec, "--json") as run:
            run.wait_ready()
            work.go()
            run.wait_output(lambda out: sum('"type": "event"' in ln for ln in out) >= depths,
                            what=f"{depths} events")
            assert run.stop() == 0
    finally:
        work.release()
    events = _events(run)
    summary = next(r for r in run.json() if r.get("type") == "summary")
    lost = sum(x["count"] for x in summary["lost"] if x["channel"] == "stacks")
    assert len(events) == depths and lost == depths - 1, (events, summary)
    assert [f.split("+")[0] for f in events[0]["ustack"][:2]] == ["er_leaf", "er_recurse"]
    assert [e["ustack"] for e in events[1:]] == [["[lost stack]"]] * (depths - 1)
    assert len({tuple(e["kstack"]) for e in events}) == 1 and events[0]["kstack"]


def test_a_stored_ustack_is_named_after_its_process_has_exited(tmp_path, program):  # noqa: F811
    # The store sends the pid; ebpf-run reads the process's mappings then. The process
    # exits (the key is counted at its exit, with the pid stored beside the stack) long
    # before the dump at the end of the run.
    spec = _spec(tmp_path, STORED)
    work = Workload(program, "calls", 3)
    try:
        with Run(spec, "--json") as run:
            run.wait_ready()
            work.go()
            time.sleep(SLOW)  # ebpf-run reads its mappings at the first store meanwhile
            work.release()
            assert work.proc.returncode == 0
            assert run.stop() == 0
    finally:
        work.release()
    (record,) = [r for r in run.json() if r.get("type") == "map"]
    names = [f.split("+")[0] for f in record["key"]["ustack"]]
    assert record["value"] == 1 and record["key"]["comm"] == "erstk"
    assert names[:4] == WORKLOAD_FRAMES, record
