"""Issue 8, faults: however a run ends, the kernel keeps nothing of it.

Each test follows the programs of one run by their ids (read from the run's own file
descriptors in /proc/PID/fdinfo while it is ready), so other BPF users on the machine
cannot confuse it, and asserts that `bpftool prog show` lists none of them afterwards.
Covered: SIGINT and SIGTERM (running and during startup), --duration, --count, an
exception in a callback (through the CLI and in-process), a second probe failing to
attach after the first attached, stdout closed early (`| head -1`), SIGKILL, bad specs
in run mode (nothing loaded at all), and two runs of one spec at the same time.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Set

import pytest
from harness import ROOT, SLOW, SPECS, Run, early_signal_outcome, loaded_programs

PY = sys.executable


# -- following a run's programs ----------------------------------------------------------


def prog_ids(pid: int) -> Set[int]:
    """Ids of the BPF programs process `pid` holds a file descriptor to."""
    ids = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in fdinfo.iterdir():
        try:
            text = entry.read_text()
        except OSError:
            continue
        m = re.search(r"^prog_id:\s*(\d+)", text, re.M)
        if m:
            ids.add(int(m.group(1)))
    return ids


def loaded_ids() -> Set[int]:
    return {p["id"] for p in loaded_programs()}


def assert_released(ids: Set[int], grace: float = 5.0) -> None:
    """None of `ids` is loaded any more (the kernel frees some of them asynchronously)."""
    assert ids, "the run held no BPF programs: the test proves nothing"
    end = time.monotonic() + grace
    while (left := ids & loaded_ids()) and time.monotonic() < end:
        time.sleep(0.1)
    assert not left, f"programs of the run still loaded: {sorted(left)}"


def programs_named(prefix: str) -> List[str]:
    return [p.get("name", "") for p in loaded_programs() if p.get("name", "").startswith(prefix)]


def assert_none_named(prefix: str, grace: float = 5.0) -> None:
    end = time.monotonic() + grace
    while (left := programs_named(prefix)) and time.monotonic() < end:
        time.sleep(0.1)
    assert not left, f"programs left loaded: {left}"


def ready_ids(run: Run) -> Set[int]:
    """The run's program ids, read while the run is paused.

    The run is stopped (SIGSTOP) as soon as it is ready: `bpftool` below is itself an
    execve, which specs counting execve calls see, so with `--count` a running run could
    reach its count and unload its programs before `bpftool` lists them. Paused, it cannot
    consume anything; the kernel keeps the records for it until SIGCONT.
    """
    run.wait_ready()
    os.kill(run.proc.pid, signal.SIGSTOP)
    try:
        ids = prog_ids(run.proc.pid)
        assert ids, "ready, but holding no BPF programs"
        assert ids <= loaded_ids()
    finally:
        os.kill(run.proc.pid, signal.SIGCONT)
    return ids


def trigger_exec() -> int:
    """/bin/sh, which execs /bin/true: exactly two execve calls, both by the returned pid.

    Absolute paths on purpose: a PATH search makes one execve call per PATH entry tried.
    """
    out = subprocess.run(["/bin/sh", "-c", "echo $$; exec /bin/true"], capture_output=True,
                         text=True, check=True)
    return int(out.stdout)


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def no_traceback(lines: List[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback" not in text and "Exception ignored" not in text, text[-3000:]


class Execs:
    """Run `sh -c 'exec /bin/true'` every `period` seconds in a thread until stopped."""

    def __init__(self, period: float = 0.2):
        self.period = period
        self.pids: List[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.pids.append(trigger_exec())

    def __enter__(self) -> Execs:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


# -- bad specs in run mode: a located error, and nothing loaded at all --------------------

HELLO = (SPECS / "hello.yaml").read_text()
BAD_SPECS: Dict[str, Any] = {
    "yaml-syntax": "name: x\nprobes: {p: [1, 2}\n",
    "schema": "name: x\nprobes:\n  p: {attach: {syscall: execve}, do: [{prin: x}]}\n",
    "meaning": "name: x\nprobes:\n  p: {attach: {syscall: exceve}, do: []}\n",
    "python-tag": 'name: !!python/object/apply:os.system ["touch pwned"]\n'
                  + HELLO[HELLO.index("probes:"):],
    "alias-bomb": "name: x\ndescription: [&a [l,l,l,l,l,l,l,l,l,l], &b [*a,*a,*a,*a,*a,*a,*a,"
                  "*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,"
                  "*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]\n"
                  + HELLO[HELLO.index("probes:"):],
    "deep-nesting": "name: x\ndescription: " + "[" * 3000 + "]" * 3000 + "\n",
    "huge-integer": "name: x\nmaps:\n  m: {type: hash, max_entries: " + "9" * 5000 + "}\n",
    "not-utf8": b"name: x\ndescription: caf\xe9\n" + HELLO[HELLO.index("probes:"):].encode(),
    "float-pages": "name: x\nmessages: {pages: 64.0}\n" + HELLO[HELLO.index("probes:"):],
    "name-with-newline": 'name: x\nprobes:\n  "hello\\n":\n    attach: {syscall: execve}\n'
                         "    do: [{print: hi}]\n",
    "huge-struct": "name: x\nstructs:\n  a: [{x: 'u64[65536]'}]\n  b: [{x: 'a[65536]'}]\n"
                   "  c: [{x: 'b[65536]'}]\n  d: [{x: 'c[65536]'}]\nmaps:\n"
                   "  o: {type: ringbuf, value: d}\nprobes:\n  p:\n"
                   "    attach: {syscall: execve}\n    do: [{emit: {to: o}}]\n",
    "print-format-that-always-fails": "name: x\nprobes:\n  p:\n    attach: {syscall: execve}\n"
                                      '    do: [{print: "{pid:s}"}]\n',
}


def _strace() -> Optional[str]:
    return shutil.which("strace")


# The same on every kernel (checking, reporting, output, caches): left out of the slow VM.
@pytest.mark.host_only
@pytest.mark.parametrize("case", sorted(BAD_SPECS), ids=str)
def test_a_bad_spec_is_a_located_error_and_loads_nothing(tmp_path, case):
    """`ebpf-run BAD` as root: exit 1 with FILE:LINE:COL, and not one bpf(BPF_PROG_LOAD)."""
    data = BAD_SPECS[case]
    spec = tmp_path / "bad.yaml"
    spec.write_bytes(data if isinstance(data, bytes) else data.encode())
    log = tmp_path / "strace.log"
    cmd = [PY, "-m", "runner", str(spec), "--duration", "3"]
    if _strace():  # proves that nothing was loaded even for a moment
        cmd = [_strace(), "-f", "-qq", "-e", "trace=bpf", "-o", str(log), *cmd]
    with Execs(0.3):  # should a bad spec run after all, its callbacks get work
        res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    no_traceback([res.stderr])
    assert res.returncode == 1, res.stderr[-2000:]
    assert re.match(rf"{re.escape(str(spec))}:\d+:\d+: error: ", res.stderr), res.stderr
    assert "ready" not in res.stderr
    if log.exists():
        loads = [ln for ln in log.read_text().splitlines() if "BPF_PROG_LOAD" in ln]
        assert not loads, f"a bad spec loaded {len(loads)} programs"
    assert not (tmp_path / "pwned").exists()


# -- signals ---------------------------------------------------------------------------------

OUTPUT_AFTER_EXEC = {
    "hello.yaml": "Hello World!",
    "hello-buffer.yaml": "Hello World",
    "hello-ring-buffer.yaml": "Hello World",
    "hello-tail.yaml": "Executing a program",
    "hello-map.yaml": None,  # prints at 2 s and at exit
}


@pytest.mark.parametrize("sig,spec", [
    *((signal.SIGINT, s) for s in sorted(OUTPUT_AFTER_EXEC)),
    (signal.SIGTERM, "hello.yaml"), (signal.SIGTERM, "hello-tail.yaml"),
    (signal.SIGTERM, "hello-buffer.yaml"),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else v)
def test_a_signal_stops_a_run_cleanly(sig, spec):
    with Run(str(SPECS / spec)) as run:
        ids = ready_ids(run)
        trigger_exec()
        want = OUTPUT_AFTER_EXEC[spec]
        if want:
            run.wait_output(lambda out: any(want in ln for ln in out), what=want)
        assert run.stop(sig) == 0
    no_traceback(run.err)
    assert any("summary:" in ln for ln in run.err), run.err
    if spec == "hello-map.yaml":
        assert run.out and "ID 0: " in run.out[-1], run.out  # the dump at exit
    assert_released(ids)


# The timing matrices below exercise ebpf-run's own start-up, the same Python on every
# kernel: the second-kernel VM (tests/vm, where each compile takes ~10 s) runs a few of them.
VM = os.environ.get("EBPF_RUN_VM") == "1"


@pytest.mark.parametrize("sig,delay", [(signal.SIGTERM, 0.3), (signal.SIGINT, 1.0)] if VM else [
    (signal.SIGTERM, 0.05), (signal.SIGTERM, 0.1), (signal.SIGTERM, 0.2), (signal.SIGTERM, 0.3),
    (signal.SIGTERM, 0.6), (signal.SIGTERM, 1.0), (signal.SIGINT, 0.05), (signal.SIGINT, 0.1),
    (signal.SIGINT, 0.2), (signal.SIGINT, 0.3), (signal.SIGINT, 0.6), (signal.SIGINT, 1.0),
], ids=lambda v: v.name if isinstance(v, signal.Signals) else f"{v}s")
def test_a_signal_during_startup_leaves_nothing(tmp_path, sig, delay):
    """Signals while Python starts, the spec compiles, BCC loads and probes attach."""
    spec = write(tmp_path, """\
        name: startup
        probes:
          sig:
            attach: {syscall: execve}
            do: [{print: "exec"}]
        """)
    with Run(spec) as run:
        # Scaled under emulation (tests/vm), where Python's own start-up takes ~1 s: a
        # signal inside the interpreter's start-up is beyond any program's reach.
        time.sleep(delay * SLOW)
        rc = run.stop(sig)
    # Before ebpf-run holds signals (Python's own start-up, 20-70 ms here) the signal ends
    # the process as for any Python program, with nothing loaded; from then on, before or
    # after the probes are ready, always a summary and exit 0 (README; test_early_signals.py).
    early_signal_outcome(sig, rc, "\n".join(run.err))
    assert_none_named("er_sig__")


def catches_sigterm(pid: int) -> bool:
    """Whether process `pid` has a handler for SIGTERM (its SigCgt mask in /proc): true
    from the first line of runner/__main__.py on, which holds SIGINT and SIGTERM."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("after", [0.0, 0.1] if VM else [0.0, 0.01, 0.03, 0.1])
def test_a_signal_from_the_first_line_on_always_ends_with_a_summary_and_0(tmp_path, sig, after):
    """Deterministic where the test above is statistical: the signal is sent only once the
    process holds signals (runner/__main__.py's first line, seen in /proc), then `after`
    seconds later: during the imports, the compile or the attach. Every outcome is the
    same: a summary and exit 0, nothing loaded."""
    spec = write(tmp_path, """\
        name: held
        probes:
          held:
            attach: {syscall: execve}
            do: [{print: "exec"}]
        """)
    with Run(spec) as run:
        deadline = time.monotonic() + 60
        while not catches_sigterm(run.proc.pid):
            assert run.proc.poll() is None and time.monotonic() < deadline, run.err
            time.sleep(0.001)
        time.sleep(after)
        rc = run.stop(sig)
    no_traceback(run.err)
    assert rc == 0, (rc, run.err)
    assert any("summary:" in ln for ln in run.err), run.err
    assert_none_named("er_held__")


@pytest.mark.parametrize("spec", ["hello.yaml", "hello-tail.yaml"])
def test_repeated_sigint_until_exit_still_exits_cleanly(spec):
    """A user pressing Ctrl-C again and again while the run drains, unloads and exits."""
    with Run(str(SPECS / spec)) as run:
        ids = ready_ids(run)
        while run.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                run.proc.send_signal(signal.SIGINT)
            time.sleep(0.002)
        rc = run.finish(60)
    no_traceback(run.err)
    assert any("summary:" in ln for ln in run.err), run.err
    assert rc == 0, f"exit status {rc} after the summary was printed"
    assert_released(ids)


# -- --duration and --count ------------------------------------------------------------------


def test_duration_ends_the_run_cleanly():
    with Run(str(SPECS / "hello.yaml"), "--duration", "1.5") as run:
        ids = ready_ids(run)
        ready = time.monotonic()
        with Execs():
            assert run.finish(30) == 0
        took = time.monotonic() - ready
    no_traceback(run.err)
    assert 1.0 <= took < 10, took
    assert run.out and set(run.out) == {"Hello World!"}
    assert any("summary:" in ln for ln in run.err)
    assert_released(ids)


@pytest.mark.parametrize("spec", ["hello.yaml", "hello-buffer.yaml", "hello-ring-buffer.yaml"])
def test_count_ends_the_run_after_exactly_n_records(spec):
    with Run(str(SPECS / spec), "--count", "3") as run:
        ids = ready_ids(run)
        with Execs(0.1):
            assert run.finish(30) == 0
    no_traceback(run.err)
    assert len(run.out) == 3, run.out
    assert_released(ids)


# -- an exception in a callback --------------------------------------------------------------


def test_a_format_that_cannot_take_every_value_is_refused_before_loading(tmp_path):
    """`{ktime:c}` works for 0 and fails for a real time stamp: the checker tries every
    format on each field's lowest and highest values, so this never reaches a callback."""
    spec = write(tmp_path, """\
        name: callback-fails
        probes:
          cb:
            attach: {tracepoint: "syscalls:sys_enter_execve"}
            do: [{print: "at {ktime:c}"}]
        """)
    res = subprocess.run([sys.executable, "-m", "runner", spec], capture_output=True,
                         text=True, timeout=60, cwd=ROOT)
    assert res.returncode == 1
    assert res.stderr.startswith(f"{spec}:5:18: error: format cannot be applied")
    no_traceback(res.stderr.splitlines())


def test_a_format_failing_in_a_callback_ends_the_run_with_a_clean_error(tmp_path):
    """In-process, with the checker bypassed: the format raises inside the ring buffer
    callback; the run stops, releases everything and reports an OutputError (exit 1)."""
    import dataclasses

    from runner.errors import OutputError
    from runner.output.text import Sink
    from runner.pipeline import compile_spec
    from runner.runtime.run import Options, Runner

    compiled = compile_spec(str(SPECS / "hello-ring-buffer.yaml"))
    events = tuple(dataclasses.replace(e, format="{pid:c}{pid:c}{pid:c}{message:d}")
                   for e in compiled.spec.events)
    spec = dataclasses.replace(compiled.spec, events=events)
    runner = Runner(spec, compiled.rendered.c, compiled.rendered.python, Options(duration=20),
                    Sink(io.StringIO(), io.StringIO()))
    stop = threading.Event()
    ids: Set[int] = set()

    def execs() -> None:
        # Trigger only once the programs are seen loaded: the first record ends the run, and
        # with them already unloaded the ids would never be seen.
        while not stop.wait(0.05):
            ids.update(prog_ids(os.getpid()))
            if ids:
                trigger_exec()

    thread = threading.Thread(target=execs, daemon=True)
    thread.start()
    try:
        with pytest.raises(OutputError, match="failed on a real record") as info:
            runner.run()
    finally:
        stop.set()
        thread.join(10)
    assert info.value.exit_code == 1
    assert runner.stop_reason == "error"
    assert ids
    assert_released(ids)


class _FailingSink:
    """Wraps output.Sink: records the run's programs when ready, then fails on data."""

    def __init__(self) -> None:
        from runner.output.text import Sink

        class Failing(Sink):
            def note(inner, text: str) -> None:
                super().note(text)
                if text.startswith("ready"):
                    self.ids = prog_ids(os.getpid())
                    self.ready.set()

            def event(inner, channel: str, text: str, fields: Dict[str, Any]) -> None:
                raise RuntimeError("the sink failed on an event")

            def events(inner, channel: str, texts: List[str]) -> None:
                raise RuntimeError("the sink failed on an event")

            def message(inner, text: str, fields: Dict[str, Any]) -> None:
                raise RuntimeError("the sink failed on a message")

        self.ids: Set[int] = set()
        self.ready = threading.Event()
        self.sink = Failing(io.StringIO(), io.StringIO())


@pytest.mark.parametrize("spec", ["hello.yaml", "hello-ring-buffer.yaml", "hello-buffer.yaml"])
def test_an_exception_in_a_callback_is_raised_after_the_poll_and_cleanup(spec):
    """In-process: the exception leaves BCC's ctypes callback, stops the loop, comes out
    of Runner.run() itself (not lost in sys.unraisablehook) with every program released."""
    from runner.pipeline import compile_spec
    from runner.runtime.run import Options, Runner

    compiled = compile_spec(str(SPECS / spec))
    failing = _FailingSink()
    runner = Runner(compiled.spec, compiled.rendered.c, compiled.rendered.python,
                    Options(duration=20), failing.sink)
    stop = threading.Event()

    def execs() -> None:
        failing.ready.wait(60)
        while not stop.wait(0.2):
            trigger_exec()

    thread = threading.Thread(target=execs, daemon=True)
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="the sink failed"):
            runner.run()
    finally:
        stop.set()
        thread.join(10)
    assert runner.stop_reason == "error"
    assert_released(failing.ids)


# -- a probe that cannot attach after another one did ----------------------------------------


def test_a_second_probe_failing_to_attach_releases_the_first(tmp_path):
    spec = write(tmp_path, """\
        name: second-fails
        probes:
          first:
            attach: {tracepoint: "syscalls:sys_enter_execve"}
            do: [{print: "first"}]
          second:
            attach:
              - raw_tracepoint: ebpf_run_no_such_raw_tp
              - uprobe: "/bin/true:ebpf_run_no_such_symbol"
              - tracepoint: "nosuch:event"
            do: [{print: "second"}]
        """)
    log = tmp_path / "strace.log"
    cmd = [PY, "-m", "runner", spec]
    if _strace():
        cmd = [_strace(), "-f", "-qq", "-e", "trace=bpf", "-o", str(log), *cmd]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    no_traceback([res.stderr])
    assert res.returncode == 3, res.stderr
    assert "ebpf-run: first: attached to tracepoint syscalls:sys_enter_execve" in res.stderr
    assert "probe second could not attach:" in res.stderr
    for reason in ("raw_tracepoint ebpf_run_no_such_raw_tp: ",
                   "uprobe /bin/true:ebpf_run_no_such_symbol: ",
                   "tracepoint nosuch:event: no tracepoint nosuch:event"):
        assert reason in res.stderr, res.stderr
    assert "ready" not in res.stderr
    if log.exists():  # the first probe's program really was loaded (and the second's tried)
        assert "BPF_PROG_LOAD" in log.read_text()
    assert_none_named("er_first__")
    assert_none_named("er_second__")


# -- stdout closed early ---------------------------------------------------------------------


@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_stdout_closed_early_ends_the_run_cleanly(json_mode):
    """`ebpf-run spec | head -1`, with the run's pid known so its programs can be followed."""
    args = [PY, "-m", "runner", str(SPECS / "hello.yaml"), *(["--json"] if json_mode else [])]
    run = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL)
    head = subprocess.Popen(["head", "-1"], stdin=run.stdout, stdout=subprocess.PIPE)
    assert run.stdout is not None and run.stderr is not None
    run.stdout.close()  # only head reads the pipe now
    err: List[str] = []
    reader = threading.Thread(target=lambda: err.extend(
        ln.decode(errors="replace") for ln in run.stderr), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        end = time.monotonic() + 120
        while not any("ready" in ln for ln in err) and time.monotonic() < end:
            assert run.poll() is None, err
            time.sleep(0.05)
        ids = prog_ids(run.pid)
        with Execs(0.1):
            rc = run.wait(60)
        first = head.communicate(timeout=10)[0].decode()
    finally:
        for p in (run, head):
            if p.poll() is None:
                p.kill()
                p.wait()
    reader.join(5)
    no_traceback(err)
    assert rc == 0, err
    assert first.count("\n") == 1 and (first.startswith('{"type": "attach"') if json_mode
                                       else first == "Hello World!\n"), first
    assert_released(ids)


def test_stdout_closed_early_in_a_shell_pipeline(tmp_path):
    """The literal `ebpf-run specs/hello.yaml | head -1`, with the exit status of ebpf-run."""
    script = (f"set -o pipefail; ( echo $BASHPID > {tmp_path}/pid; exec {PY} -m runner "
              f"specs/hello.yaml 2> {tmp_path}/err ) | head -1; echo ${{PIPESTATUS[0]}} "
              f"> {tmp_path}/rc")
    shell = subprocess.Popen(["bash", "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    end = time.monotonic() + 120
    errf = tmp_path / "err"
    while not (errf.exists() and "ready" in errf.read_text()) and time.monotonic() < end:
        assert shell.poll() is None
        time.sleep(0.05)
    ids = prog_ids(int((tmp_path / "pid").read_text()))
    try:
        with Execs(0.1):
            out = shell.communicate(timeout=60)[0].decode()
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait()
    assert out == "Hello World!\n"
    assert (tmp_path / "rc").read_text().strip() == "0", errf.read_text()
    no_traceback([errf.read_text()])
    assert_released(ids)


# -- SIGKILL ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["hello-tail.yaml", "hello-buffer.yaml"])
def test_sigkill_leaves_nothing_loaded(spec):
    """No cleanup code runs; closing the process's fds must release every program, the
    tail-call targets held only by a prog_array included."""
    with Run(str(SPECS / spec)) as run:
        ids = ready_ids(run)
        trigger_exec()
        assert run.stop(signal.SIGKILL) == -signal.SIGKILL
    assert_released(ids, grace=10)


# -- two runs of one spec at the same time ---------------------------------------------------

TWICE = """\
    name: twice
    structs:
      ev:
        - pid: u32
        - comm: char[16]
    maps:
      ring: {type: ringbuf, value: ev}
      perf: {type: perf_event_array, value: ev}
    probes:
      twice:
        attach: {tracepoint: "syscalls:sys_enter_execve"}
        do:
          - print: "message {pid}"
          - emit: {to: ring, set: {pid: pid, comm: comm}}
          - emit: {to: perf, set: {pid: pid, comm: comm}}
    output:
      - {events: ring, format: "ring {pid}"}
      - {events: perf, format: "perf {pid}"}
    """


def test_two_runs_of_one_spec_each_see_their_own_records_once(tmp_path):
    """Both trace every exec, so both see each exec; through its own buffers each sees it
    exactly once per channel (a shared or crossed buffer would show it twice or never)."""
    spec = write(tmp_path, TWICE)
    with Run(spec) as a, Run(spec) as b:
        ids_a, ids_b = ready_ids(a), ready_ids(b)
        assert not ids_a & ids_b
        pids = [trigger_exec() for _ in range(5)]  # two execve calls each: sh, then true
        for run in (a, b):
            for kind in ("message", "ring", "perf"):
                run.wait_output(lambda out, k=kind: all(out.count(f"{k} {p}") >= 2
                                                        for p in pids), what=kind)
        time.sleep(0.5)  # room for any duplicate to show up
        assert a.stop() == 0 and b.stop() == 0
    for run in (a, b):
        no_traceback(run.err)
        for p in pids:
            for kind in ("message", "ring", "perf"):
                assert run.out.count(f"{kind} {p}") == 2, (kind, p, run.out)
    assert_released(ids_a | ids_b)


def test_a_second_trace_pipe_run_fails_cleanly_and_leaves_the_first_alone(tmp_path):
    """trace_pipe has one reader: the second run of the spec exits 3, unloads what it loaded,
    and the first keeps printing only its own lines, each once."""
    spec = write(tmp_path, """\
        name: via-trace-pipe
        messages: {via: trace_pipe}
        probes:
          tp:
            attach: {tracepoint: "syscalls:sys_enter_execve"}
            do: [{print: "exec {pid}"}]
        """)
    with Run(spec) as first:
        ids = ready_ids(first)
        second = subprocess.run([PY, "-m", "runner", spec], cwd=ROOT, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 3, second.stderr
        assert "trace_pipe is busy" in second.stderr
        no_traceback([second.stderr])
        time.sleep(0.5)
        mine = {p["id"] for p in loaded_programs() if p.get("name", "").startswith("er_tp__")}
        assert mine == ids, "the second run left programs behind"
        pid = trigger_exec()
        first.wait_output(lambda out: out.count(f"exec {pid}") >= 2)
        time.sleep(0.5)
        assert first.stop() == 0
    assert first.out.count(f"exec {pid}") == 2, first.out
    assert all(ln.startswith("exec ") for ln in first.out), first.out
    assert_released(ids)
