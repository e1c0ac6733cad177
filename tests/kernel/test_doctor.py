"""`ebpf-run doctor` tells the truth about this kernel, found by trying."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import assert_nothing_loaded, kprobes_available
from harness import ROOT


def test_doctor_reports_what_attaches():
    res = subprocess.run([sys.executable, "-m", "runner", "doctor"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {}
    for ln in res.stdout.splitlines()[1:]:
        if ln and not ln.startswith(" "):
            name, rest = ln[:17].strip(), ln[17:].split()
            if rest:
                rows[name] = rest[0]
    assert rows["tracepoint"] == "ok"
    assert rows["raw_tracepoint"] == "ok"
    assert rows["privileges"] == "ok" and rows["bcc"] == "ok" and rows["tracefs"] == "ok"
    assert rows["kprobe"] == ("ok" if kprobes_available() else "no")
    assert rows["kernel headers"] in ("ok", "warn")  # matching, or nearest with a warning
    assert "the shipped specs can run here" in res.stdout
    if not kprobes_available():
        assert "CONFIG_KPROBES is not set" in res.stdout
    if os.environ.get("EBPF_RUN_TESTS_SHARED") != "1":  # see tests/kernel/conftest.py
        assert_nothing_loaded()  # its probe programs are gone again
