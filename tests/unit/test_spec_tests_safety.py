"""`ebpf-run test` runs a spec's commands as root (issue 24): what its triggers start is
killed at the end of the case, what is kept of their output and of the run is bounded,
regexes have a time bound and ASCII semantics, and triggers run as nobody unless the case
says otherwise. No kernel: triggers are real processes, the run is a stand-in."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List

import pytest

from runner.kinds.expectations import last_dump
from runner.model.tests import Count, Expectation, Trigger
from runner.support import regexes
from runner.testing import containment, expectations, session, triggers
from runner.testing.containment import Box
from runner.testing.session import Kept
from runner.testing.triggers import Output, run_trigger, take_captures

from .test_spec_tests import case, spec_text
from .util import ROOT, spec_from_text

DAEMON = ("/bin/sh", "-c",
          # A double fork (sh, a subshell, then the daemon) into a session of its own: the
          # subshell exits, the daemon is init's child and has left the trigger's group.
          # It prints its pid once in its session; head ends the trigger then.
          "( setsid sh -c 'echo $$; exec sleep 1000 >/dev/null' </dev/null 2>&1 & ) | head -n 1")


def state(pid: int) -> str:
    """The process's state letter (S, R, Z...), or "gone"."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def gone(pid: int) -> bool:
    """Dead: no such process, or a zombie its new parent (init) has not reaped yet."""
    return state(pid) in ("gone", "Z")


def sid(pid: int) -> int:
    return os.getsid(pid)


needs_cgroup = pytest.mark.skipif(containment.cgroup_problem() is not None,
                                  reason=f"no writable cgroup v2: {containment.cgroup_problem()}")


# -- 1. what a trigger starts ends with its case -------------------------------------------

@needs_cgroup
def test_a_daemon_a_trigger_starts_is_killed_with_the_case():
    t = Trigger(DAEMON, None, 5.0, (("pid", r"^(\d+)$"),))
    with Box.open() as box:
        result = run_trigger(t, box)
        daemon = result.captures["pid"]
        assert result.problem is None
        assert not gone(daemon) and sid(daemon) == daemon  # it left the trigger's session
        assert daemon in box.members()
        path = box.path
    assert gone(daemon)
    assert path is not None and not os.path.exists(path)  # the case's cgroup is removed


@needs_cgroup
def test_without_cgroup_kill_the_members_are_killed_one_by_one(monkeypatch):
    monkeypatch.setattr(containment, "KILL_FILE", "no-such-file")  # a kernel before 5.14
    t = Trigger(DAEMON, None, 5.0, (("pid", r"^(\d+)$"),))
    with Box.open() as box:
        daemon = run_trigger(t, box).captures["pid"]
        assert not gone(daemon)
    assert gone(daemon)


@needs_cgroup
def test_a_case_kills_what_its_trigger_left_running(monkeypatch, tmp_path):
    """The whole case (a stand-in run): the daemon lives through the run, not past it."""
    pids = tmp_path / "pids"
    result = fake_case(monkeypatch, tmp_path,
                       f"echo $$; echo $$ >> {pids}; ( setsid sleep 1000 </dev/null "
                       f">/dev/null 2>&1 & echo $! > {tmp_path / 'daemon'} )")
    assert (result.status, result.failures) == ("pass", ())
    assert gone(int((tmp_path / "daemon").read_text()))


@needs_cgroup
def test_the_cgroup_of_a_killed_test_run_is_swept_by_the_next():
    root = containment.cgroup2_root()
    assert root is not None
    left = os.path.join(root, f"{containment.PREFIX}999999999.0")  # no such pid
    os.mkdir(left)
    try:
        sleeper = subprocess.Popen(["sleep", "1000"])
        with open(os.path.join(left, "cgroup.procs"), "w") as f:
            f.write(str(sleeper.pid))
        with Box.open():
            assert not os.path.exists(left)
        assert sleeper.wait(10) == -9
    finally:
        if os.path.exists(left):
            containment._kill_cgroup(left)
            os.rmdir(left)


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_where_no_cgroup_can_be_made_the_process_group_is_killed_and_that_is_said(
        monkeypatch):
    monkeypatch.setattr(containment, "cgroup2_root", lambda: None)
    assert containment.cgroup_problem() == "no cgroup v2 is mounted"
    t = Trigger(("/bin/sh", "-c", "sleep 1000 </dev/null >/dev/null 2>&1 & echo $!"), None,
                5.0, (("pid", r"^(\d+)$"),))
    with Box.open() as box:
        assert box.path is None
        child = run_trigger(t, box).captures["pid"]
        assert not gone(child)
    assert gone(child)


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_a_trigger_ends_with_its_process_even_when_a_background_one_holds_stdout():
    t = Trigger(("/bin/sh", "-c", "echo 7; sleep 1000 &"), None, 30.0, (("n", r"^(\d+)$"),))
    with Box.open() as box:
        assert run_trigger(t, box) == triggers.TriggerResult({"n": 7}, None)


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_a_daemon_still_printing_lives_until_the_case_ends():
    """Its stdout stays open (it blocks once the pipe is full) rather than closing under it
    and killing it with SIGPIPE in the middle of the case."""
    import time

    t = Trigger(("/bin/sh", "-c", "( while :; do echo x; done ) & echo $!"), None, 5.0,
                (("pid", r"^(\d+)$"),))
    with Box.open() as box:
        loop = run_trigger(t, box).captures["pid"]
        end = time.monotonic() + 30
        while state(loop) not in ("S", "gone", "Z") and time.monotonic() < end:
            time.sleep(0.01)  # until it blocks on the full pipe, or dies writing to it
        assert state(loop) == "S"
    assert gone(loop)


# -- 2. what is kept is bounded; the rest is counted ------------------------------------------

def test_trigger_output_past_the_limit_is_counted_not_kept():
    big = 50 * triggers.KEEP_OUTPUT
    t = Trigger(("/bin/sh", "-c", f"echo 42; head -c {big} /dev/zero"), None, 60.0,
                (("n", r"^(\d+)$"),))
    with Box.open() as box:
        result = run_trigger(t, box)
    assert result == triggers.TriggerResult({"n": 42}, None, 3 + big - triggers.KEEP_OUTPUT)


def test_output_keeps_its_first_bytes():
    out = Output(keep=10)
    for chunk in (b"12345", b"678901234", b"", b"xyz"):
        out.add(chunk)
    assert (bytes(out.data), out.dropped) == (b"1234567890", 7)


def test_a_capture_beyond_what_is_kept_says_so():
    t = Trigger(("x",), None, 1.0, (("pid", r"^(\d+)$"),))
    assert take_captures(t, "x", dropped=99).problem == (
        "capture pid: /^(\\d+)$/ found nothing in the trigger's stdout 'x' "
        "(99 more bytes were not kept)")


def event(pid: int, channel: str = "output") -> dict:
    return {"type": "event", "channel": channel, "data": {"pid": pid}}


def test_records_past_the_budget_are_counted_by_what_selects_them():
    kept = Kept(budget=100)
    for pid in range(10):
        kept.add(event(pid), 30)  # three fit
    kept.add(event(1, "other"), 30)
    kept.add({"type": "message", "text": "hi"}, 30)
    kept.add({"type": "summary", "lost": []}, 1000)  # always kept
    assert [r["type"] for r in kept.records] == ["event"] * 3 + ["summary"]
    assert kept.dropped == {("event", "output"): 7, ("event", "other"): 1,
                            ("message", ""): 1}
    kept.too_long()
    assert kept.total_dropped() == 10


def test_a_maps_new_dump_replaces_the_old_one():
    kept = Kept(budget=100)
    for n in range(20):
        kept.add({"type": "map", "map": "counts", "entries": [{"key": 0, "value": n}]}, 60)
    assert last_dump("counts", kept.records) == [{"key": 0, "value": 19}]
    assert kept.used == 60 and not kept.dropped


def where_pid() -> Expectation:
    """Exactly 1 event on output where pid == {pid}."""
    e = case(spec_text("hello-buffer"), "echoed-pid").expect[0]
    return Expectation(e.kind, e.target, e.where[:1], Count("exactly", 1), e.origin)


def test_expectations_about_records_not_kept_are_not_evaluated():
    e = where_pid()
    recs = [{"type": "event", "channel": "output", "data": {"pid": 5}}]
    dropped = {("event", "output"): 3}
    # Exactly one among those kept, but three more were not kept: unknown, not a pass.
    out = expectations.check(e, recs, {"pid": 5}, dropped)
    assert not out.ok
    assert "could not be evaluated: 3 of the run's records it is about were not kept" \
        in out.message
    # At least one among those kept: the ones not kept cannot undo it.
    at_least = Expectation(e.kind, e.target, e.where, Count("at_least", 1), e.origin)
    assert expectations.check(at_least, recs, {"pid": 5}, dropped).ok
    assert not expectations.check(at_least, [], {"pid": 5}, dropped).ok
    # Records of another channel not kept change nothing.
    assert expectations.check(e, recs, {"pid": 5}, {("event", "other"): 3}).ok


BUSY_RUN = r"""
import json, signal, sys
def stop(*_):
    print(json.dumps({"type": "summary", "seconds": 0.1, "channels": {}, "lost": []}))
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
print("ebpf-run: ready (1 probe attached)", file=sys.stderr, flush=True)
line = json.dumps({"type": "event", "channel": "output", "data": {"pid": 1, "uid": 0,
                   "command": "sh", "message": "Hello World"}})
for _ in range(N):
    print(line)
sys.stdout.flush()
signal.pause()
"""


def test_a_run_printing_past_the_budget_keeps_the_budget(monkeypatch, tmp_path):
    script = tmp_path / "busy_run.py"
    script.write_text("N = 20000\n" + BUSY_RUN)
    monkeypatch.setattr(session, "KEEP_BYTES", 100_000)
    monkeypatch.setattr(session, "run_argv", lambda path, c: [sys.executable, str(script)])
    child = session._Child([sys.executable, str(script)])
    assert child.wait(lambda: sum(child.kept.dropped.values()) + len(child.records) >= 20000,
                      60)
    child.stop()
    kept = len(child.records) - 1  # the summary
    assert child.kept.used <= 100_000
    assert kept + child.kept.dropped[("event", "output")] == 20000
    text = spec_text("hello-buffer").replace('"echo $$; exec /bin/true"', '"echo 1"').replace(
        "user: 0 ", f"user: {os.geteuid()} ")
    result = session.run_case("x.yaml", case(text, "echoed-pid"))
    assert result.status == "fail"
    assert result.notes == (f"{20000 - kept} records of the run not kept (over 100000 bytes)",)
    assert "could not be evaluated" in result.failures[0].message


# -- 3. regexes: bounded, ASCII, numbers of any length -----------------------------------------

CATASTROPHIC = r"^(a+)+$"


def test_a_regex_that_backtracks_without_end_fails_the_case_saying_so(monkeypatch):
    monkeypatch.setattr(regexes, "SECONDS", 0.2)
    text = spec_text("hello-buffer").replace("command: sh,", "command: {regex: '^(a+)+$'},")
    c = case(text, "echoed-pid")
    recs = [{"type": "event", "channel": "output",
             "data": {"pid": 5, "uid": 0, "command": "a" * 40 + "!", "message": "Hello World"}}]
    out = expectations.check(c.expect[0], recs, {"pid": 5})
    assert not out.ok
    assert out.message.endswith(
        f"could not be evaluated: regex /{CATASTROPHIC}/ did not finish within 0.2 s on a "
        f"text of 41 characters (a pattern that backtracks without end: simplify it)")
    assert not expectations.met_for_good(c.expect[:1], recs, {"pid": 5})


def test_a_capture_that_backtracks_without_end_fails_the_case(monkeypatch):
    monkeypatch.setattr(regexes, "SECONDS", 0.2)
    t = Trigger(("x",), None, 1.0, (("x", r"^((a+)+)$"),))
    assert take_captures(t, "a" * 40 + "!").problem == (
        "capture x: regex /^((a+)+)$/ did not finish within 0.2 s on a text of 41 characters "
        "(a pattern that backtracks without end: simplify it) on the trigger's stdout")


def test_a_capture_of_more_digits_than_int_takes_stays_text():
    t = Trigger(("x",), None, 1.0, (("n", r"^(\d+)$"),))
    assert take_captures(t, "7" * 5000).captures == {"n": "7" * 5000}


def test_digits_are_ascii_digits():
    t = Trigger(("x",), None, 1.0, (("n", r"^(\d+)$"),))
    arabic = "\u0661\u0662\u0663"  # 123 in Arabic-Indic digits
    assert take_captures(t, arabic).problem is not None
    assert take_captures(t, "123").captures == {"n": 123}
    assert regexes.search(r"^\w+$", "caf\u00e9") is None


def test_a_run_line_with_a_huge_number_is_not_json_not_a_traceback():
    child = session._Child([sys.executable, "-c", "print('{\"n\": ' + '9' * 5000 + '}')"])
    child.wait(lambda: child.proc.poll() is not None, 60)
    child.stop()
    assert child.bad_count == 1 and child.records == []


# -- 4. triggers run as nobody unless the case says root ---------------------------------------

def users(text: str) -> List[object]:
    return [c.trigger.user for c in spec_from_text(text, "x.yaml").tests]


def test_triggers_run_as_nobody_unless_the_case_names_a_user():
    assert users(spec_text("hello")) == [65534, 65534]
    assert users(spec_text("hello-map")) == [0, 65534]


@pytest.mark.skipif(os.geteuid() != 0, reason="becoming nobody needs root")
def test_a_default_trigger_really_is_nobody():
    t = Trigger(("/bin/sh", "-c", "id -u; id -g; id -G"), 65534, 5.0,
                (("uid", r"^(\d+)$"), ("groups", r"^(\d+)\n\d+\n\Z")))
    with Box.open() as box:
        # gid and the one group: the uid's own, nothing left over from root
        assert run_trigger(t, box).captures == {"uid": 65534, "groups": 65534}


def test_validate_shows_each_trigger_and_who_runs_it():
    res = subprocess.run([sys.executable, "-m", "runner", "validate", "specs/hello-map.yaml"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.stdout.splitlines()[1:] == [
        "  test root-execs runs as root: /bin/sh -c 'for i in 1 2 3 4 5; do /bin/true; done'",
        "  test other-uid runs as uid 65534: /bin/sh -c 'for i in 1 2 3 4 5; do /bin/true; "
        "done'"]


def test_test_names_the_root_triggers_and_a_missing_cgroup_before_running(monkeypatch,
                                                                           capsys):
    from runner.cli import main as cli
    from runner.cli import test as test_command
    from runner.testing.session import CaseResult

    monkeypatch.setattr(test_command, "check_environment", lambda: None)
    monkeypatch.setattr(test_command, "cgroup_problem", lambda: "no cgroup v2 is mounted")
    monkeypatch.setattr(test_command, "run_case", lambda path, c: CaseResult("pass", 0.0))
    assert cli.main(["test", str(ROOT / "specs" / "hello-map.yaml")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        "ebpf-run: test: hello-map:root-execs runs as root: /bin/sh -c 'for i in 1 2 3 4 5; "
        "do /bin/true; done'",
        "ebpf-run: test: no cgroup v2 is mounted: triggers are contained by their process "
        "group only, and what leaves it (setsid) outlives its case"]


def test_a_stderr_line_too_long_keeps_its_start():
    child = session._Child([sys.executable, "-c",
                            "import sys; sys.stderr.write('ebpf-run: ready' + 'x' * 10000)"])
    child.wait(lambda: child.proc.poll() is not None, 60)
    child.stop()
    assert child.ready() and list(child.err) == ["ebpf-run: ready" + "x" * 4081]


# -- a stand-in for the run, as in test_spec_tests ----------------------------------------------

def fake_case(monkeypatch, tmp_path, shell: str):
    from .test_spec_tests import FAKE_RUN

    pids = tmp_path / "pids"
    script = tmp_path / "fake_run.py"
    script.write_text(f"EXIT = 0\nPIDS = {str(pids)!r}\n" + FAKE_RUN)
    monkeypatch.setattr(session, "run_argv", lambda path, c: [sys.executable, str(script)])
    text = spec_text("hello-buffer").replace('"echo $$; exec /bin/true"', repr(shell)).replace(
        "user: 0 ", f"user: {os.geteuid()} ")
    return session.run_case("specs/hello-buffer.yaml", case(text, "echoed-pid"))
