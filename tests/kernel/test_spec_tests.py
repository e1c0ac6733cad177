"""`ebpf-run test` over the shipped specs, for real: one process runs every case of every
spec (the VM is slow; one interpreter and one compile per case, not a process per check)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from harness import ROOT, SPECS

from runner.pipeline import check
from runner.testing.requirements import unmet


def shipped_specs():
    return sorted(str(p.relative_to(ROOT)) for p in
                  [*SPECS.glob("*.yaml"), *(SPECS / "tools").glob("*.yaml")])


def ebpf_run_test(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runner", "test", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)


def test_every_shipped_spec_passes_its_own_tests():
    specs = shipped_specs()
    skipped = []
    total = 0
    for path in specs:
        spec = check(str(ROOT / path))
        assert spec.tests, f"{path} carries no tests"
        total += len(spec.tests)
        skipped += [f"{spec.name}:{c.name}" for c in spec.tests if unmet(c.requires)]
    done = ebpf_run_test(*specs)
    lines = done.stdout.splitlines()
    assert [ln for ln in lines if ln.startswith("FAIL")] == [], done.stderr
    summary = f"{total - len(skipped)} passed, 0 failed"
    if skipped:
        summary += f", {len(skipped)} skipped"
    assert lines[-1] == summary, done.stdout + done.stderr
    assert done.returncode == 0
    assert sorted(ln.split()[1].rstrip(":") for ln in lines if ln.startswith("SKIP")) == \
        sorted(skipped)


# The same on every kernel (checking, reporting, output, caches): left out of the slow VM.
@pytest.mark.host_only
def test_a_broken_expectation_fails_saying_what_was_expected_and_seen(tmp_path):
    text = (SPECS / "hello-buffer.yaml").read_text().replace("command: sh,", "command: zsh,")
    path = tmp_path / "hello-buffer.yaml"
    path.write_text(text)
    done = ebpf_run_test(str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    fail, summary = done.stdout.splitlines()
    assert summary == "0 passed, 1 failed"
    assert fail.startswith("FAIL hello-buffer:echoed-pid: expected exactly 1 event on output "
                           "where pid == "), fail
    # The shell's own event is among the closest records, with what did not match.
    assert '"command": "sh", "message": "Hello World"} (command is "sh", not == "zsh")' in fail


@pytest.mark.host_only  # containment is the machine's cgroups, not the BPF side
def test_a_daemon_a_trigger_starts_does_not_outlive_its_case(tmp_path):
    """A trigger that double-forks a `sleep 1000` into a session of its own: the case passes,
    and after it the daemon is gone (its cgroup was killed; the process group alone would
    not hold it)."""
    daemon = tmp_path / "daemon"
    text = (SPECS / "hello-buffer.yaml").read_text().replace(
        '"echo $$; exec /bin/true"',
        repr(f"( setsid sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {daemon} ); "
             "echo $$; exec /bin/true"))
    path = tmp_path / "hello-buffer.yaml"
    path.write_text(text)
    done = ebpf_run_test(str(path))
    assert done.stdout.splitlines()[-1] == "1 passed, 0 failed", done.stdout + done.stderr
    pid = int(daemon.read_text())
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        state = "gone"
    if state not in ("gone", "Z"):  # nothing of this test left behind, even on a failure
        os.kill(pid, 9)
    assert state in ("gone", "Z"), f"the daemon {pid} outlived its case (state {state})"
