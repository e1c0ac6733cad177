"""The four Chapter 2 examples (and the ring buffer variant), run for real."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

from harness import SLOW, SPECS, Run, trigger_exec


def test_hello_prints_hello_world_per_exec(expected_syscall_attach):
    with Run(str(SPECS / "hello.yaml")) as run:
        run.wait_ready()
        assert any(f"hello: {expected_syscall_attach}" in ln for ln in run.err), run.err
        trigger_exec()  # sh, then /bin/true: two executions
        run.wait_output(lambda out: out.count("Hello World!") >= 2)
        assert run.stop() == 0
    assert set(run.out) == {"Hello World!"}
    assert any("summary:" in ln for ln in run.err)


def test_hello_map_counts_per_uid_every_two_seconds(expected_syscall_attach):
    with Run(str(SPECS / "hello-map.yaml")) as run:
        run.wait_ready()
        assert any(f"hello: {expected_syscall_attach}" in ln for ln in run.err)
        for _ in range(3):
            trigger_exec()
        start = time.monotonic()
        run.wait_output(lambda out: any(_count(ln, 0) >= 6 for ln in out), timeout=6)
        first = time.monotonic() - start
        assert first <= 2.6 * SLOW, "a dump must come every 2 seconds"
        n_before = _count(run.out[-1], 0)
        trigger_exec()
        run.wait_output(lambda out: _count(out[-1], 0) >= n_before + 2, timeout=6)
        assert run.stop() == 0
    # Every line is 'ID <uid>: <count>' entries joined by tabs (or empty before any exec).
    for line in run.out:
        assert line == "" or re.fullmatch(r"ID \d+: \d+(\tID \d+: \d+)*", line), line
    # Counts only grow; the final dump at exit is the last line.
    counts = [_count(ln, 0) for ln in run.out]
    assert counts == sorted(counts)


def _count(line: str, uid: int) -> int:
    m = re.search(rf"(?:^|\t)ID {uid}: (\d+)", line)
    return int(m.group(1)) if m else 0


def _run_buffer_spec(name: str, expected_syscall_attach: str) -> None:
    with Run(str(SPECS / name)) as run:
        run.wait_ready()
        assert any(f"hello: {expected_syscall_attach}" in ln for ln in run.err)
        pid = trigger_exec()
        # At execve entry the caller is still the shell: command is `sh`.
        run.wait_output(lambda out: f"{pid} 0 sh Hello World" in out)
        assert run.stop() == 0
    for line in run.out:
        assert re.fullmatch(r"\d+ \d+ \S.* Hello World", line), line
    assert any("nothing lost" in ln for ln in run.err), run.err


def test_hello_buffer_perf(expected_syscall_attach):
    _run_buffer_spec("hello-buffer.yaml", expected_syscall_attach)


def test_hello_buffer_ring(expected_syscall_attach):
    _run_buffer_spec("hello-ring-buffer.yaml", expected_syscall_attach)


def test_hello_tail_dispatches_by_syscall_name():
    with Run(str(SPECS / "hello-tail.yaml")) as run:
        run.wait_ready()
        assert "hello: attached to raw_tracepoint sys_enter" in "\n".join(run.err)
        time.sleep(0.5)
        # The table is filled before the dispatcher attaches: no default-path burst.
        assert not any(ln.startswith("Another syscall") for ln in run.out), run.out
        trigger_exec()
        subprocess.run(["timeout", "1", "sleep", "2"], check=False)
        run.wait_output(lambda out: "Creating a timer" in out and "Executing a program" in out)
        assert run.stop() == 0
    assert set(run.out) <= {"Executing a program", "Creating a timer", "Deleting a timer",
                            "Some other timer operation"}, run.out


def test_hello_tail_without_default_prints_other_syscalls(tmp_path):
    spec = (SPECS / "hello-tail.yaml").read_text().replace("    default: ignore_opcode\n", "")
    spec = spec.replace("  ignore_opcode:\n    do: []\n", "")
    path = tmp_path / "no-default.yaml"
    path.write_text(spec)
    with Run(str(path), "--count", "20") as run:
        run.wait_ready()
        shutil.which("true") and trigger_exec()
        assert run.finish(30) == 0
    others = [ln for ln in run.out if ln.startswith("Another syscall: ")]
    assert others, run.out
    for line in others:
        assert re.fullmatch(r"Another syscall: \d+", line)
