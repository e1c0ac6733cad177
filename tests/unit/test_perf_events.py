"""Sampling probe targets: bpftrace's names, counts and units, and the errors a spec gets
for anything else, located at the target."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from runner.check import params
from runner.codegen.render import render_c
from runner.errors import SpecError
from runner.kinds.perf_events import PerfEvent, PerfEventError, parse
from runner.model.spec import Spec

from .util import ROOT, spec_from_text


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


HZ_SPEC = """name: hz
params:
  hz: {type: u32, default: DEFAULT}
  cpu: {type: s32, default: CPU}
probes:
  p:
    attach: {profile: "TARGET"}
    do: [{print: hi}]
"""


def _hz_spec(target: str = "hz:{params.hz} cpu={params.cpu}", default: str = "99",
             cpu: str = "1") -> Spec:
    return spec_from_text(HZ_SPEC.replace("TARGET", target).replace("DEFAULT", default)
                          .replace("CPU", cpu))


def test_a_parameter_in_a_sampling_target_is_its_default_until_applied():
    spec = _hz_spec()
    cand, = spec.probes[0].candidates
    assert (cand.target, cand.template) == ("profile:hz:99 cpu=1",
                                            "profile:hz:{params.hz} cpu={params.cpu}")
    assert cand.describe == "perf_event profile:hz:99 cpu=1"
    applied, = params.apply(spec, {"hz": "0x1f3", "cpu": "0"}).probes[0].candidates
    assert (applied.target, applied.describe) == ("profile:hz:499 cpu=0",
                                                  "perf_event profile:hz:499 cpu=0")
    assert parse(*applied.target.split(":", 1)) == PerfEvent(1, 0, 499, 0, cpu=0)
    assert "perf_event profile:hz:499 cpu=1 */" in render_c(params.apply(spec, {"hz": "499"}))
    # A literal target has no template: apply leaves it as it is.
    literal, = params.apply(_hz_spec("hz:49"), {"hz": "7"}).probes[0].candidates
    assert (literal.target, literal.template) == ("profile:hz:49", "")


@pytest.mark.parametrize("value, message", [
    ("20000", "--set hz=20000: probe 'p': the frequency 20000 is more than 10000"),
    ("0", "--set hz=0: probe 'p': the frequency must be a whole number from 1, not '0'"),
])
def test_a_set_value_a_literal_could_not_be_is_refused_with_the_literal_s_reason(value,
                                                                                message):
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        params.apply(_hz_spec(), {"hz": value})


@pytest.mark.parametrize("target, default, cpu, message", [
    ("hz:{params.hz}", "10001", "1",
     "7:23: error: the frequency 10001 is more than 10000 (from 'hz:{params.hz}')"),
    ("hz:99 cpu={params.cpu}", "99", "-1",
     "7:23: error: after the event, only ' cpu=N' and ' pid=N' may follow, not 'cpu=-1' "
     "(from 'hz:99 cpu={params.cpu}')"),
    ("hz:{params.hzz}", "99", "1", "7:23: error: unknown parameter 'hzz'"),
])
def test_a_parameter_s_default_is_checked_where_the_target_is(target, default, cpu, message):
    with pytest.raises(SpecError) as info:
        _hz_spec(target, default, cpu)
    assert str(info.value).startswith("test.yaml:" + message), str(info.value)


def test_set_hz_on_the_profile_tool_exits_2_with_the_reason():
    done = subprocess.run([sys.executable, "-m", "runner", "render",
                           "specs/tools/profile.yaml", "--set", "hz=10001"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == ("ebpf-run: error: --set hz=10001: probe 'on_cpu': the frequency "
                           "10001 is more than 10000\n")
