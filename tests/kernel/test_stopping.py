"""Stopping under load and while blocked, and counting every record at the stop.

A stop (SIGINT, SIGTERM, --duration) detaches the probes, drains what the buffers still
hold, then counts: received + lost equals what the probes did. Here "what the probes
did" is counted by the probe itself, in a hash map dumped at exit (after the detach), so
the comparison is exact however fast the generator is. Time appears only as generous
"it exited" bounds.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, List, Set

import pytest
from getppid import Generator, event_spec
from harness import ROOT, SLOW, Run, loaded_programs

sys.path.insert(0, str(ROOT / "bench"))
from stop_many import tracepoints  # bench/: the tracepoints the benchmark stops

# Calls getppid() as fast as it can after a line on stdin, for at most LIMIT seconds:
# far longer than any run below is allowed to take after its stop.
FLOOD_LIMIT_S = 60
FLOOD = ("import os, sys, time; sys.stdin.readline(); end = time.monotonic() + {limit}\n"
         "while time.monotonic() < end:\n"
         "    for _ in range(2000): os.getppid()\n")


def spec_for(tmp_path: Path, kind: str, pages: int, pid: int) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(event_spec(kind, pages, pid, count_calls=True))
    return str(path)


def account(records: List[dict], pid: int) -> dict:
    """What the run printed, received, lost, and what its probe counted."""
    summary = next(r for r in records if r["type"] == "summary")
    dump = [r for r in records if r["type"] == "map" and r["map"] == "calls"][-1]
    calls = sum(e["value"] for e in dump["entries"] if e["key"] == pid)
    return {"printed": sum(1 for r in records if r["type"] == "event"),
            "received": summary["channels"]["events"]["received"],
            "lost": sum(x["count"] for x in summary["lost"] if x["channel"] == "events"),
            "calls": calls}


# -- under a flood ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind,reader,how", [
    ("perf_event_array", "", signal.SIGINT), ("perf_event_array", "", signal.SIGTERM),
    ("perf_event_array", "", "duration"),
    # BCC's own perf reader (the fallback off x86-64): under emulation in the VM the
    # records it decoded were not printed before the stop (not seen on this host, not
    # with a consumer slowed on purpose: see the test after this one). Kept visible as an
    # expected failure until it is understood.
    pytest.param("perf_event_array", "callback", signal.SIGINT, marks=[
        pytest.mark.host_only,
        pytest.mark.xfail(reason="not printed under emulation (VM)", strict=False)]),
    ("ringbuf", "in-place", signal.SIGINT),
    ("ringbuf", "in-place", "duration"), ("ringbuf", "callback", signal.SIGINT),
], ids=lambda v: v if isinstance(v, str) else getattr(v, "name", v))
def test_a_stop_under_a_flood_ends_the_run_and_counts_every_call(tmp_path, kind, reader, how):
    """A generator faster than the reader, still running when the stop comes: the run
    ends long before the generator would, and received + lost == calls the probe saw.
    (libbcc's perf reader and libbpf's ring consume both read until the buffer is empty:
    before the detach-first stop, they never returned under this load.)"""
    gen = Generator(code=FLOOD.format(limit=FLOOD_LIMIT_S))
    try:
        spec = spec_for(tmp_path, kind, 8 if kind == "perf_event_array" else 64, gen.pid)
        args = ["--duration", "2"] if how == "duration" else []
        with Run(spec, "--json", *args, env={"EBPF_RUN_RING_READER": reader,
                                             "EBPF_RUN_PERF_READER": reader}) as run:
            run.wait_ready()
            gen.go(wait=False)
            run.wait_output(lambda out: sum('"type": "event"' in ln for ln in out) >= 100)
            stopped = time.monotonic()
            if how != "duration":
                run.proc.send_signal(how)
            rc = run.finish(FLOOD_LIMIT_S - 15)  # AssertionError if still alive then
            took = time.monotonic() - stopped
        assert gen.proc.poll() is None, "the generator ended before the run: no flood"
    finally:
        gen.end()
    assert rc == 0, run.err
    assert took < FLOOD_LIMIT_S - 15
    got = account(run.json(), gen.pid)
    assert got["calls"] > 0 and got["printed"] == got["received"], got
    assert got["received"] + got["lost"] == got["calls"], got


def test_bccs_perf_reader_returns_from_its_poll_while_a_flood_goes_on(tmp_path, monkeypatch):
    """In-process, BCC's perf reader with a consumer far slower than the producer. libbcc
    reads a CPU's buffer until it finds it empty, reading the head again after every
    record, so a flood that refilled it faster than the callbacks run would keep its poll
    from returning. Here (one flood pinned to one CPU, 10k callbacks a second against
    millions of calls) it returns: the run ends at its duration while the flood goes on,
    and every call is either received or counted lost."""
    from runner.kernel import channels
    from runner.output.json import JsonSink
    from runner.pipeline import compile_spec
    from runner.runtime.run import Options, Runner
    from runner.support.fallbacks import Fallbacks

    opened = channels.open_perf_callback

    def slow_reader(*args: Any) -> Any:  # (..., on_data, on_lost)
        *first, on_data, on_lost = args

        def slow(addr: int, size: int) -> None:
            time.sleep(0.00002)  # about 10k records a second: the flood is far faster
            on_data(addr, size)
        return opened(*first, slow, on_lost)

    monkeypatch.setattr(channels, "open_perf_callback", slow_reader)
    gen = Generator(code=FLOOD.format(limit=FLOOD_LIMIT_S))
    # Each on its own CPU: the flood stays in one CPU's buffer, which the reader reads
    # from the other (a generator moving between CPUs lets the read end by chance).
    saved = os.sched_getaffinity(0)
    cpus = sorted(saved)
    if len(cpus) >= 2:
        os.sched_setaffinity(gen.pid, {cpus[1]})
        os.sched_setaffinity(0, {cpus[0]})
    out = io.StringIO()

    class Starting(JsonSink):
        def note(self, text: str) -> None:
            super().note(text)
            if text.startswith("ready"):
                gen.go(wait=False)

    try:
        compiled = compile_spec(spec_for(tmp_path, "perf_event_array", 8, gen.pid))
        runner = Runner(compiled.spec, compiled.rendered.c, compiled.rendered.python,
                        Options(duration=1, json=True, fallbacks=Fallbacks(perf_callback=True)),
                        Starting(out, io.StringIO()))
        assert runner.run() == 0
        assert gen.proc.poll() is None, "the flood ended before the run did"
    finally:
        os.sched_setaffinity(0, saved)
        gen.end()
    got = account([json.loads(ln) for ln in out.getvalue().splitlines()], gen.pid)
    assert got["calls"] > got["received"] > 0 and got["printed"] == got["received"], got
    assert got["received"] + got["lost"] == got["calls"], got


@pytest.mark.parametrize("kind", ["perf_event_array", "ringbuf"])
def test_records_pending_at_a_stop_are_printed_and_counted_exactly(tmp_path, kind):
    """A known number of calls, all made before the stop; part still in the buffer."""
    n = 30_000
    gen = Generator(n)
    try:
        spec = spec_for(tmp_path, kind, 64 if kind == "perf_event_array" else 1024, gen.pid)
        with Run(spec, "--json") as run:
            run.wait_ready()
            gen.go()
            assert run.stop(signal.SIGINT) == 0
    finally:
        gen.end()
    got = account(run.json(), gen.pid)
    assert got["calls"] == n, got
    assert got["received"] + got["lost"] == n and got["printed"] == got["received"], got


@pytest.mark.parametrize("kind", ["perf_event_array", "ringbuf"])
def test_count_prints_n_and_counts_what_the_probes_sent_after_them(tmp_path, kind):
    """--count 10 with thousands of calls: ten printed; the rest read and counted in the
    summary (not printed), so received + after --count + lost == calls the probe saw."""
    gen = Generator(5000)
    try:
        spec = spec_for(tmp_path, kind, 64 if kind == "perf_event_array" else 1024, gen.pid)
        with Run(spec, "--json", "--count", "10") as run:
            run.wait_ready()
            gen.go()
            assert run.finish(60) == 0
    finally:
        gen.end()
    records = run.json()
    got = account(records, gen.pid)
    summary = next(r for r in records if r["type"] == "summary")
    after = summary["channels"]["events"].get("after_count", 0)
    assert got["printed"] == got["received"] == 10, got
    assert got["received"] + after + got["lost"] == got["calls"] > 10, (got, after)
    assert any(f"{after} more read after --count" in ln for ln in run.err), run.err


# -- blocked on stdout -------------------------------------------------------------------------

def _start(spec: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "runner", spec, "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={**os.environ, **env})


def _collect(stream, into: List[str]) -> threading.Thread:
    t = threading.Thread(target=lambda: into.extend(
        ln.decode("utf-8", "replace").rstrip("\n") for ln in stream), daemon=True)
    t.start()
    return t


def _wait_ready(proc: subprocess.Popen, err: List[str]) -> None:
    end = time.monotonic() + 120
    while not any("ready" in ln for ln in err):
        assert proc.poll() is None and time.monotonic() < end, err
        time.sleep(0.05)


# The same on every kernel (checking, reporting, output, caches): left out of the slow VM.
@pytest.mark.host_only
def test_sigint_while_stdout_is_blocked_keeps_every_json_line_whole(tmp_path):
    """The glued-records bug: stdout a full pipe read slowly, SIGINT while ebpf-run is
    blocked writing it, PYTHONUNBUFFERED=1 as on this project's machines. Every line must
    be one whole record and every received record printed."""
    n = 20_000
    gen = Generator(n)
    try:
        proc = _start(spec_for(tmp_path, "ringbuf", 1024, gen.pid), {"PYTHONUNBUFFERED": "1"})
        err: List[str] = []
        errs = _collect(proc.stderr, err)
        _wait_ready(proc, err)
        gen.go()
        time.sleep(0.5 * SLOW)  # (only helps: ebpf-run is by now blocked on the full pipe)
        proc.send_signal(signal.SIGINT)
        out = bytearray()
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(2000):  # a slow reader: many partial writes
            out.extend(chunk)
            time.sleep(0.0005)
        assert proc.wait(60) == 0, err
        errs.join(10)
    finally:
        gen.end()
    lines = out.decode().splitlines()
    records = [json.loads(ln) for ln in lines]  # a glued or cut line fails here
    got = account(records, gen.pid)
    assert got == {"printed": n, "received": n, "lost": 0, "calls": n}, got


def test_sigint_with_nobody_reading_stdout_still_ends_the_run(tmp_path):
    n = 20_000  # about 1.7 MB of JSON: far more than a pipe holds
    gen = Generator(n)
    try:
        proc = _start(spec_for(tmp_path, "ringbuf", 1024, gen.pid), {})
        err: List[str] = []
        errs = _collect(proc.stderr, err)
        _wait_ready(proc, err)
        gen.go()
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"ebpf-run blocked on stdout ignored SIGINT: {err}") from None
        errs.join(10)
        assert proc.stdout is not None
        proc.stdout.close()
    finally:
        gen.end()
    assert rc == 0, err
    assert any("summary:" in ln and f"events: {n} received" in ln for ln in err), err
    assert any("bytes of output were dropped" in ln for ln in err), err
    assert not any("Traceback" in ln for ln in err), err


# -- blocked in a tail-call table fill ---------------------------------------------------------

def test_sigint_during_a_long_prog_array_fill_ends_the_run(tmp_path):
    """A 4M-slot table filled slot by slot takes many seconds: a signal must not wait."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent("""\
        name: big-table
        maps:
          jump: {type: prog_array, max_entries: 4000000}
        probes:
          p:
            attach: {tracepoint: "syscalls:sys_enter_getppid"}
            do:
              - tail_call: {map: jump, index: 1}
        programs:
          target:
            do: []
        tail_calls:
          jump:
            default: target
        """))
    with Run(str(spec)) as run:
        # The target program is loaded when the fill starts; the probe's only at attach.
        end = time.monotonic() + 120
        while not _holds_program(run.proc.pid, "er_target"):
            assert run.proc.poll() is None and time.monotonic() < end, run.err
            time.sleep(0.02)
        assert run.stop(signal.SIGINT, timeout=30) == 0
    assert any("stopped (SIGINT) before the probes were ready" in ln for ln in run.err), run.err
    assert any("summary:" in ln for ln in run.err), run.err


def _holds_program(pid: int, prefix: str) -> bool:
    names = {p["id"]: p.get("name", "") for p in loaded_programs()}
    return any(names.get(i, "").startswith(prefix) for i in _prog_ids(pid))


# -- many probes ---------------------------------------------------------------------------

MANY = 50 if os.environ.get("EBPF_RUN_VM") == "1" else 1000  # (VM: compiles are slow)


@pytest.mark.parametrize("how,probes", [("link", MANY), ("bcc", 20)])
def test_a_stop_detaches_many_probes_and_counts_exactly(tmp_path, how, probes):
    """MANY tracepoint probes (one counting a known process's getppid calls, the others
    empty): all attach, the count is exact, SIGINT ends the run with its summary and 0,
    and none of its programs stays loaded or attached. Also through BCC's attach, the
    fallback where the kernel has no BPF links (fewer probes: 80 ms each to stop). (How
    long the stop takes is a benchmark figure, bench/stop_many: 81 s for 1,000 probes
    before they were detached side by side through links, 0.6 s after.)"""
    gen = Generator(100)
    lines = ["name: many", "maps:", "  calls: {type: hash, key: u32, value: u64}",
             "probes:", "  counted:", '    attach: {tracepoint: "syscalls:sys_enter_getppid"}',
             f"    do: [{{if: \"pid == {gen.pid}\", then: [{{count: {{map: calls, key: pid}}}}]}}]"]
    for i, tp in enumerate(tracepoints(probes - 1, but="syscalls:sys_enter_getppid")):
        lines += [f"  m{i}:", f'    attach: {{tracepoint: "{tp}"}}', "    do: []"]
    spec = tmp_path / "many.yaml"
    spec.write_text("\n".join([*lines, "output:", "  - map: calls", ""]))
    try:
        with Run(str(spec), "--json", env={"EBPF_RUN_TRACEPOINT_ATTACH": how}) as run:
            run.wait_ready()
            os.kill(run.proc.pid, signal.SIGSTOP)  # its programs, listed while it holds them
            try:
                ids = _prog_ids(run.proc.pid)
            finally:
                os.kill(run.proc.pid, signal.SIGCONT)
            gen.go()
            stopped = time.monotonic()
            rc = run.stop(signal.SIGINT, timeout=120)
            took = time.monotonic() - stopped
    finally:
        gen.end()
    assert rc == 0, run.err
    assert any(f"ready ({probes} probes attached)" in ln for ln in run.err), run.err[-3:]
    assert len(ids) == probes, len(ids)
    assert not any("Traceback" in ln for ln in run.err), run.err
    records = run.json()
    summary = [r for r in records if r["type"] == "summary"]
    assert len(summary) == 1 and summary[0]["lost"] == [], summary
    dump = [r for r in records if r["type"] == "map" and r["map"] == "calls"][-1]
    assert dump["entries"] == [{"key": gen.pid, "value": 100}], dump
    left = ids & _loaded_ids()
    end = time.monotonic() + 10
    while left and time.monotonic() < end:  # the kernel frees programs asynchronously
        time.sleep(0.1)
        left = ids & _loaded_ids()
    assert not left, f"{len(left)} programs of the run still loaded"
    print(f"\n{probes} probes ({how}): SIGINT to exit {took:.2f}s (a figure, not a bound)")


def _prog_ids(pid: int) -> Set[int]:
    """Ids of the BPF programs process `pid` holds a descriptor to."""
    ids = set()
    for entry in Path(f"/proc/{pid}/fdinfo").iterdir():
        try:
            text = entry.read_text()
        except OSError:
            continue
        ids.update(int(ln.split()[1]) for ln in text.splitlines() if ln.startswith("prog_id:"))
    return ids


def _loaded_ids() -> Set[int]:
    return {p["id"] for p in loaded_programs()}
