"""Sampling probe targets: bpftrace's names, counts and units, and the errors a spec gets
for anything else, located at the target."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runner.kinds.perf_events import PerfEvent, PerfEventError, parse

from .util import ROOT


@pytest.mark.parametrize("option, target, event", [
    ("profile", "hz:99", PerfEvent(1, 0, 99, 0, event="cpu-clock")),
    ("profile", "ms:10", PerfEvent(1, 0, 0, 10_000_000, event="cpu-clock")),
    ("profile", "hz:49 cpu=1", PerfEvent(1, 0, 49, 0, cpu=1, event="cpu-clock")),
    ("profile", "hz:49 pid=42 cpu=0", PerfEvent(1, 0, 49, 0, cpu=0, pid=42, event="cpu-clock")),
    ("software", "faults", PerfEvent(1, 2, 0, 100, event="page-faults")),
    ("software", "cs:10", PerfEvent(1, 3, 0, 10, event="context-switches")),
    ("hardware", "cycles", PerfEvent(0, 0, 0, 1_000_000, family="hardware",
                                     event="cpu-cycles")),
    ("hardware", "cache-misses:500", PerfEvent(0, 3, 0, 500, family="hardware",
                                               event="cache-misses")),
])
def test_targets_read_as_bpftrace_reads_them(option, target, event):
    assert parse(option, target) == event


@pytest.mark.parametrize("option, target, message", [
    ("profile", "hz:0", "the frequency must be a whole number from 1, not '0'"),
    ("profile", "hz:100000", "the frequency 100000 is more than 10000"),
    ("profile", "us:50", "profile interval us:50 is shorter than 1/10000 s"),
    ("profile", "min:1", "profile takes hz:N, s:N, ms:N or us:N, not 'min:1'"),
    ("software", "page-fault", "unknown software event 'page-fault'; known: alignment-faults,"),
    ("hardware", "cycles:012", "the count must be a whole number from 1, not '012'"),
    ("software", "faults cpu=1 cpu=2", "cpu= given twice"),
    ("software", "faults:99999999999999999999999", "is more than"),
])
def test_bad_targets_say_what_is_wrong(option, target, message):
    with pytest.raises(PerfEventError, match=message.replace("(", r"\(")):
        parse(option, target)


def test_a_bad_target_is_refused_at_its_line_and_column(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: bad\nprobes:\n  p:\n    attach: {software: \"pagefaults:1\"}\n"
                    "    do: [{print: hi}]\n")
    done = subprocess.run([sys.executable, "-m", "runner", "validate", str(spec)], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"{spec}:4:24: error: unknown software event 'pagefaults'")
