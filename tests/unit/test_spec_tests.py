"""The tests: section and `ebpf-run test`'s matching, on recorded --json output (no kernel).

The shipped specs' own cases are matched against real records; a broken expectation must
fail with a message that says what was expected and what was seen.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, List

import pytest

from runner.errors import SpecError
from runner.model.tests import Trigger
from runner.testing import expectations
from runner.testing.report import Report
from runner.testing.session import CaseResult, Failure
from runner.testing.triggers import take_captures

from .util import ROOT, spec_from_text

DATA = ROOT / "tests" / "data" / "spec_tests"


def records(name: str) -> List[Dict[str, Any]]:
    return [json.loads(ln) for ln in (DATA / f"{name}.jsonl").read_text().splitlines()]


def spec_text(name: str) -> str:
    return (ROOT / "specs" / f"{name}.yaml").read_text()


def case(text: str, name: str):
    spec = spec_from_text(text, "specs/x.yaml")
    return next(c for c in spec.tests if c.name == name)


def failures(text: str, name: str, recs, captures) -> List[str]:
    c = case(text, name)
    return [o.message for o in expectations.check_all(c.expect, recs, captures) if not o.ok]


# -- the shipped specs' cases against real records --------------------------------------------

def test_hello_buffer_case_passes_on_its_records():
    assert failures(spec_text("hello-buffer"), "echoed-pid", records("hello-buffer"),
                    {"pid": 30296}) == []


def test_hello_buffer_with_another_comm_fails_saying_expected_and_seen():
    broken = spec_text("hello-buffer").replace("command: sh,", "command: zsh,")
    assert failures(broken, "echoed-pid", records("hello-buffer"), {"pid": 30296}) == [
        'expected exactly 1 event on output where pid == 30296 (captured pid), uid == 0, '
        'command == "zsh", message == "Hello World"; saw 0 of 12 events on output; closest '
        'records seen: {"pid": 30296, "uid": 0, "command": "bash", "message": "Hello World"} '
        '(command is "bash", not == "zsh") | {"pid": 30296, "uid": 0, "command": "sh", '
        '"message": "Hello World"} (command is "sh", not == "zsh") | {"pid": 30222, "uid": 0, '
        '"command": "python", "message": "Hello World"} (pid is 30222, not == 30296 (captured '
        'pid); command is "python", not == "zsh")'
    ]


def test_hello_buffer_with_another_pid_fails():
    assert len(failures(spec_text("hello-buffer"), "echoed-pid", records("hello-buffer"),
                        {"pid": 30297})) == 1


def test_hello_map_counts_of_the_last_dump():
    assert failures(spec_text("hello-map"), "root-execs", records("hello-map"), {}) == []
    # The other-uid case wants exactly 6 (its trigger runs /bin/true five times); these
    # records come from a shell that ran it three times.
    assert failures(spec_text("hello-map"), "other-uid", records("hello-map"), {}) == [
        "expected exactly 1 entry of map counter_table where key == 65534, value == 6; saw 0 "
        'of 2 entries of map counter_table; closest records seen: {"key": 65534, "value": 4} '
        '(value is 4, not == 6) | {"key": 0, "value": 46} (key is 0, not == 65534; value is '
        "46, not == 6)"
    ]


def test_hello_tail_cases_and_a_broken_text():
    recs = records("hello-tail")
    assert failures(spec_text("hello-tail"), "exec", recs, {}) == []
    assert failures(spec_text("hello-tail"), "timer", recs, {}) == []
    broken = spec_text("hello-tail").replace("- message: Creating a timer",
                                             "- message: Creating a Timer")
    assert failures(broken, "timer", recs, {}) == [
        'expected at least 1 message where text == "Creating a Timer"; saw 0 of 4 messages; '
        'closest records seen: {"text": "Executing a program"} (text is "Executing a '
        'program", not == "Creating a Timer") | {"text": "Executing a program"} (text is '
        '"Executing a program", not == "Creating a Timer") | {"text": "Creating a timer"} '
        '(text is "Creating a timer", not == "Creating a Timer")'
    ]


def test_none_expected_shows_the_records_that_should_not_be_there():
    text = spec_text("hello-tail").replace('{regex: "^Another syscall"}', "Executing a program",
                                           1)
    assert failures(text, "exec", records("hello-tail"), {}) == [
        'expected no messages where text == "Executing a program"; saw 2 of 4 messages; '
        'matching records seen: {"text": "Executing a program"} | {"text": "Executing a '
        'program"}'
    ]


def test_nothing_lost_reads_the_summary():
    recs = records("hello-buffer")
    c = case(spec_text("hello-buffer"), "echoed-pid")
    lost = c.expect[1]
    assert expectations.check(lost, recs, {}).ok
    summary = dict(recs[-1], lost=[{"channel": "output", "reason": "buffer full",
                                    "count": 3}])
    out = expectations.check(lost, [*recs[:-1], summary], {})
    assert (out.ok, out.message) == (False, 'expected nothing lost; saw 3 lost: [{"channel": '
                                            '"output", "reason": "buffer full", "count": 3}]')
    out = expectations.check(lost, recs[:-1], {})
    assert out.message == ("expected nothing lost; saw no summary record (the run did not "
                           "end normally)")


# -- conditions ----------------------------------------------------------------------------

CONDITIONS = """
name: t
structs:
  e_t:
    - pid: u32
    - ppid: u32
    - comm: char[16]
maps:
  out: {type: ringbuf, value: e_t}
probes:
  p:
    attach: {syscall: execve}
    do: [{emit: {to: out, set: {pid: pid, ppid: 1, comm: comm}}}]
tests:
  c:
    trigger: {shell: "echo $$ x", capture: {pid: '^(\\d+)', word: ' (\\w+)$'}}
    expect:
      - event: out
        where: WHERE
"""


@pytest.mark.parametrize("where, ok", [
    ("{pid: {gt: 10, lt: 12}}", True),
    ("{pid: {ge: 12}}", False),
    ("{pid: {ne: '{pid}'}}", False),
    ("{pid: {gt: {field: ppid}}}", True),
    ("{ppid: {ge: {field: pid}}}", False),
    ("{comm: {regex: '^b.s'}}", True),
    ("{comm: {regex: '^s'}}", False),
    ("{comm: {one_of: [sh, bash]}}", True),
    ("{comm: 'x{word}'}", False),
    ("{comm: 'ba{word}'}", True),
    ("{comm: 'ba{word}', pid: '{pid}'}", True),
    ("{comm: 'ba{word}', pid: '{word}'}", False),
])
def test_conditions(where, ok):
    c = case(CONDITIONS.replace("WHERE", where), "c")
    recs = [{"type": "event", "channel": "out", "data": {"pid": 11, "ppid": 1, "comm": "bash"}}]
    assert expectations.check(c.expect[0], recs, {"pid": 11, "word": "sh"}).ok is ok


def test_a_template_compares_as_text():
    c = case(CONDITIONS.replace("WHERE", "{pid: 'x{pid}'}"), "c")
    recs = [{"type": "event", "channel": "out", "data": {"pid": "x11", "ppid": 1}}]
    assert expectations.check(c.expect[0], recs, {"pid": 11}).ok


def test_met_for_good_only_for_counts_that_more_records_cannot_undo():
    c = case(spec_text("hello-tail"), "exec")
    recs = records("hello-tail")
    assert not expectations.met_for_good(c.expect, recs, {})  # "no Another syscall" waits
    assert expectations.met_for_good(c.expect[:1], recs, {})
    assert not expectations.met_for_good(c.expect[:1], recs[:1], {})


def test_captures_are_numbers_when_they_read_as_one():
    t = Trigger(("x",), None, 1.0, (("pid", r"^(\d+)$"), ("who", r"^user (\w+)")))
    assert take_captures(t, "user root\n123\n").captures == {"pid": 123, "who": "root"}
    missing = take_captures(t, "nothing")
    assert missing.problem == ("capture pid: /^(\\d+)$/ found nothing in the trigger's "
                               "stdout 'nothing'")


# -- located errors at check time --------------------------------------------------------------

def errors(where: str, extra: str = "") -> List[str]:
    text = CONDITIONS.replace("WHERE", where) + extra
    with pytest.raises(SpecError) as e:
        spec_from_text(text, "t.yaml")
    return [f"{d.location.line}:{d.location.col}: {d.message}" + (f" ({d.hint})" if d.hint
            else "") for d in e.value.diagnostics]


def test_unknown_field_with_a_hint():
    assert errors("{pids: 1}") == ["19:17: unknown field 'pids' (did you mean 'pid'?)"]


def test_undeclared_capture():
    assert errors("{pid: '{pdi}'}") == ["19:22: unknown capture 'pdi' (did you mean 'pid'?)"]


def test_an_empty_condition_is_refused():
    assert errors("{pid: {}}") == [
        "19:22: an empty condition tests nothing (give a value, or {op: value})"]


def test_numbers_compare_with_numbers():
    assert errors("{pid: {lt: ten}}") == ["19:27: 'lt' compares numbers; 'ten' is not one"]


def test_bad_regex_and_capture_groups():
    text = CONDITIONS.replace("WHERE", "{comm: {regex: '('}}").replace(
        r"'^(\d+)'", r"'^\d+'")
    with pytest.raises(SpecError) as e:
        spec_from_text(text, "t.yaml")
    assert [d.message for d in e.value.diagnostics] == [
        "capture 'pid' needs exactly one group (...) in its regex, which has 0",
        "bad regex '(': missing ), unterminated subpattern at position 0",
    ]


def test_one_kind_per_expectation_and_known_names():
    extra = """  d:
    requires: [kprobe]
    trigger: {command: [/bin/true]}
    expect:
      - {event: out, map: out}
      - {map: out}
      - {attach: q}
      - {message: hi}
"""
    assert errors("{pid: 1}", extra) == [
        "21:16: unknown kernel feature 'kprobe' (did you mean 'kprobes'?)",
        "24:9: an expectation names exactly one of: event, message, map, attach, lost "
        "(this one names event, map)",
        "25:15: map 'out' is a ringbuf: it is never dumped (expect its records with `event:`)",
        "26:18: unknown probe 'q' (known probes: p)",
        "27:19: this spec prints no messages (expect `event:` records)",
    ]


def test_trigger_needs_command_or_shell():
    text = CONDITIONS.replace("WHERE", "{}").replace(
        'trigger: {shell: "echo $$ x",', 'trigger: {shell: "x", command: [y],')
    with pytest.raises(SpecError) as e:
        spec_from_text(text, "t.yaml")
    assert [d.message for d in e.value.diagnostics] == [
        "a trigger needs exactly one of 'command' (an argv list) or 'shell' (a script for "
        "/bin/sh -c)"]


def test_set_names_a_param_of_the_spec():
    extra = """    run: {set: {port: 80}}
"""
    assert errors("{pid: 1}", extra) == ["20:17: unknown param 'port' (no params are declared)"]


# -- the report ---------------------------------------------------------------------------------

def test_report_lines_and_summary():
    out = io.StringIO()
    r = Report(out)
    r.case("a.yaml", "a:one", CaseResult("pass", 0.5))
    r.case("a.yaml", "a:two", CaseResult("fail", 0.5, (Failure("expected x; saw y", "o"),)))
    r.case("b.yaml", "b:k", CaseResult("skip", 0.0, reason="kernel has no kprobes"))
    r.summary()
    assert out.getvalue().splitlines() == [
        "PASS a:one", "FAIL a:two: expected x; saw y", "SKIP b:k: kernel has no kprobes",
        "skipped: b:k (kernel has no kprobes)", "1 passed, 1 failed, 1 skipped"]


def test_report_json_records():
    out = io.StringIO()
    r = Report(out, json=True)
    r.case("a.yaml", "a:one", CaseResult("fail", 0.25, (Failure("expected x; saw y", "o"),)))
    r.summary()
    assert [json.loads(ln) for ln in out.getvalue().splitlines()] == [
        {"type": "test_case", "case": "a:one", "file": "a.yaml", "status": "fail",
         "seconds": 0.25, "failures": [{"message": "expected x; saw y", "origin": "o"}],
         "reason": None, "notes": []},
        {"type": "test_summary", "passed": 0, "failed": 1, "skipped": 0, "skipped_cases": []},
    ]


# -- the command's exit codes ------------------------------------------------------------------

def test_cannot_run_here_exits_3_saying_why(monkeypatch, capsys):
    from runner.cli import main as cli
    from runner.kernel import bcc as kernel

    monkeypatch.setattr(kernel.os, "geteuid", lambda: 65534)
    monkeypatch.setattr(kernel, "_has_caps", lambda *caps: False)
    assert cli.main(["test", str(ROOT / "specs" / "hello-buffer.yaml")]) == 3
    assert capsys.readouterr().err.strip() == (
        "ebpf-run: error: loading BPF programs needs root, or CAP_BPF and CAP_PERFMON: "
        "run ebpf-run with sudo")


def test_only_skipped_cases_need_no_kernel(monkeypatch, capsys, tmp_path):
    """A case whose kernel feature is missing is skipped, named, and passes the command."""
    from runner.cli import main as cli
    from runner.testing import requirements

    monkeypatch.setitem(requirements.PRESENT, "kprobes", lambda: False)
    text = spec_text("hello").replace("  per-exec:", "  per-exec:\n    requires: [kprobes]")
    path = tmp_path / "hello.yaml"
    path.write_text(text)
    assert cli.main(["test", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "SKIP hello:per-exec: kernel has no kprobes (CONFIG_KPROBES is off)",
        "SKIP hello:kprobe-first: kernel has no kprobes (CONFIG_KPROBES is off)",
        "skipped: hello:per-exec (kernel has no kprobes (CONFIG_KPROBES is off)), "
        "hello:kprobe-first (kernel has no kprobes (CONFIG_KPROBES is off))",
        "0 passed, 0 failed, 2 skipped",
    ]


def test_a_broken_spec_is_a_spec_error_before_anything_runs(capsys, tmp_path):
    from runner.cli import main as cli

    path = tmp_path / "bad.yaml"
    path.write_text(spec_text("hello").replace("- message: Hello World!",
                                               "- message: '{nope}'"))
    assert cli.main(["test", str(path), str(ROOT / "specs" / "hello-map.yaml")]) == 1
    assert "unknown capture 'nope'" in capsys.readouterr().err


# -- one case driven against a stand-in for the run (no kernel) ------------------------------

FAKE_RUN = r"""
import json, signal, sys, time
# Stands in for `ebpf-run SPEC --json`: ready, one event per pid named in the trigger's
# file, a summary on SIGINT.
def stop(*_):
    print(json.dumps({"type": "summary", "seconds": 0.1, "channels": {}, "lost": []}))
    sys.exit(EXIT)
signal.signal(signal.SIGINT, stop)
print("ebpf-run: ready (1 probe attached)", file=sys.stderr, flush=True)
seen = 0
while True:
    try:
        pids = open(PIDS).read().split()
    except OSError:
        pids = []
    for pid in pids[seen:]:
        print(json.dumps({"type": "event", "channel": "output", "data": {
            "pid": int(pid), "uid": 0, "command": "sh", "message": "Hello World"}}),
            flush=True)
    seen = len(pids)
    time.sleep(0.01)
"""


def fake_case(monkeypatch, tmp_path, exit_code=0, shell=None):
    from runner.testing import session

    pids = tmp_path / "pids"
    script = tmp_path / "fake_run.py"
    script.write_text(f"EXIT = {exit_code}\nPIDS = {str(pids)!r}\n" + FAKE_RUN)
    monkeypatch.setattr(session, "run_argv", lambda path, case: [
        __import__("sys").executable, str(script)])
    text = spec_text("hello-buffer").replace(
        '"echo $$; exec /bin/true"', repr(shell or f"echo $$; echo $$ >> {pids}")).replace(
        "user: 0 ", f"user: {os.geteuid()} ")  # root, or the user running these tests
    return session.run_case("specs/hello-buffer.yaml", case(text, "echoed-pid"))


def test_a_case_passes_against_a_run_that_prints_the_event(monkeypatch, tmp_path):
    result = fake_case(monkeypatch, tmp_path)
    assert (result.status, result.failures) == ("pass", ())


def test_a_run_that_fails_fails_the_case(monkeypatch, tmp_path):
    result = fake_case(monkeypatch, tmp_path, exit_code=3)
    assert result.status == "fail"
    assert [f.message for f in result.failures] == [
        "ebpf-run exited 3: ebpf-run: ready (1 probe attached)"]


def test_a_trigger_that_does_not_print_the_capture_fails_the_case(monkeypatch, tmp_path):
    result = fake_case(monkeypatch, tmp_path, shell="echo no pid here")
    assert [f.message for f in result.failures] == [
        "capture pid: /^(\\d+)$/ found nothing in the trigger's stdout 'no pid here\\n'"]


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_a_trigger_that_hangs_is_ended_with_its_children():
    from runner.testing.containment import Box
    from runner.testing.triggers import run_trigger

    # The background sleep holds stdout open: without the group kill the read would wait.
    t = Trigger(("/bin/sh", "-c", "sleep 30 & sleep 30"), None, 0.5, ())
    with Box.open() as box:
        assert run_trigger(t, box).problem == "trigger did not end within 0.5 s"


def test_run_options_become_the_runs_flags():
    from runner.testing.session import run_argv

    spec = spec_from_text((ROOT / "specs" / "tools" / "execsnoop.yaml").read_text(), "x.yaml")
    c = next(c for c in spec.tests if c.name == "pid-param")
    assert run_argv("x.yaml", c)[3:] == ["run", "x.yaml", "--json", "--set", "pid=1"]
