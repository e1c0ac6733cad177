"""The event tools of specs/tools side by side with bpftrace (issue 15): bpftrace runs the
equivalent program on the same trigger at the same time, and both must report the same
pids, signals, exit codes, lines and states, exactly, and the values the trigger made."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import time
from typing import Dict, List

import pytest
from bpftrace_oracle import Bpftrace, agree, fields, needs_bpftrace
from harness import SPECS, Run, drain
from test_tools import LEADER_FIRST
from test_tools_agg import connect_code

# host_only: bpftrace side by side; the second kernel runs the tools' own cases.
pytestmark = [pytest.mark.host_only, needs_bpftrace]

TOOLS = SPECS / "tools"
FREE_PID = 99_999_999  # above any pid_max (at most 4194304): never a process
SIGNAL_OUT_OF_RANGE = 100  # above SIGRTMAX (64): EINVAL


def tool(name: str) -> Run:
    """The tool, started: the caller waits for it to be ready inside its `with`."""
    return Run(str(TOOLS / f"{name}.yaml"), "--json")


def events(run: Run) -> List[Dict]:
    return [r["data"] for r in run.json() if r.get("type") == "event"]


def printed(run: Run) -> List[Dict]:
    """The values of the messages a tool's `print` sent (killsnoop), by their JSON keys."""
    return [r["data"] for r in run.json() if r.get("type") == "message"]


def test_killsnoop_agrees_on_sender_target_signal_and_result():
    me = os.getpid()
    oracle = Bpftrace(
        f"tracepoint:syscalls:sys_enter_kill /pid == {me}/ {{ @target[tid] = args->pid;"
        " @sig[tid] = args->sig; @in[tid] = 1; }"
        " tracepoint:syscalls:sys_exit_kill /@in[tid]/ {"
        ' printf("KILL %d %d %d %d\\n", pid, @target[tid], @sig[tid], args->ret);'
        " delete(@in[tid]); delete(@target[tid]); delete(@sig[tid]); }")
    with oracle, tool("killsnoop") as run:
        run.wait_ready()
        sleeper = subprocess.Popen(["/bin/sleep", "30"])
        try:
            os.kill(sleeper.pid, 0)
            with pytest.raises(OSError):  # EINVAL
                os.kill(sleeper.pid, SIGNAL_OUT_OF_RANGE)
            os.kill(sleeper.pid, signal.SIGTERM)
        except BaseException:
            sleeper.kill()
            raise
        finally:
            sleeper.wait()
        with pytest.raises(ProcessLookupError):
            os.kill(FREE_PID, 0)
        run.wait_output(lambda out: any(f'"target": {FREE_PID},' in ln for ln in out))
        oracle.wait_output(lambda out: any(f" {FREE_PID} " in ln for ln in out))
        assert run.stop() == 0
        seen = oracle.stop()
    targets = (sleeper.pid, FREE_PID)  # not run.stop()'s kill() of ebpf-run
    mine = [(e["pid"], e["target"], e["signal"], e["ret"]) for e in printed(run)
            if e["pid"] == me and e["target"] in targets]
    theirs = [tuple(int(f) for f in row) for row in fields(seen, "KILL")
              if int(row[1]) in targets]
    agree(mine, theirs, [(me, sleeper.pid, 0, 0), (me, sleeper.pid, SIGNAL_OUT_OF_RANGE, -22),
                         (me, sleeper.pid, signal.SIGTERM, 0), (me, FREE_PID, 0, -3)])


def _running(proc: subprocess.Popen, comm: str) -> None:
    """Until the child has exec'd `comm` (before that it is a copy of python)."""
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            with open(f"/proc/{proc.pid}/comm") as f:
                if f.read().strip() == comm:
                    return
        except FileNotFoundError:
            break
        time.sleep(0.01)
    raise AssertionError(f"{comm} did not start")


def test_exitsnoop_agrees_on_pid_parent_code_signal_and_age():
    me = os.getpid()
    oracle = Bpftrace(
        # The process's last thread, as exitsnoop.yaml decides it (not pid == tid: the
        # leader can exit before the other threads).
        "tracepoint:sched:sched_process_exit /curtask->signal->live.counter == 0 &&"
        " curtask->real_parent->tgid =="
        f' {me}/ {{ printf("EXIT %d %d %s %d %d %d\\n", pid, curtask->real_parent->tgid,'
        " comm, (curtask->exit_code >> 8) & 0xff, curtask->exit_code & 0x7f,"
        " (nsecs - curtask->group_leader->start_time) / 1000000); }")
    with oracle, tool("exitsnoop") as run:
        run.wait_ready()
        code = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
        assert code.wait() == 7
        killed = subprocess.Popen(["/bin/sh", "-c", "kill -KILL $$"])
        assert killed.wait() == -signal.SIGKILL
        sleeper = subprocess.Popen(["/bin/sleep", "30"])
        try:
            _running(sleeper, "sleep")
            sleeper.send_signal(signal.SIGTERM)
        finally:
            sleeper.wait()
        leader_first = subprocess.Popen([sys.executable, "-c", LEADER_FIRST])
        assert leader_first.wait(30) == 5
        pids = (code.pid, killed.pid, sleeper.pid, leader_first.pid)
        run.wait_output(lambda out: any(f'"pid": {leader_first.pid},' in ln for ln in out))
        oracle.wait_output(lambda out: any(f"EXIT {leader_first.pid} " in ln for ln in out))
        assert run.stop() == 0
        seen = oracle.stop()
    mine = [e for e in printed(run) if e["pid"] in pids]
    theirs = [row for row in fields(seen, "EXIT") if int(row[0]) in pids]
    agree([(e["pid"], e["ppid"], e["comm"], e["code"], e["signal"]) for e in mine],
          [(int(p), int(pp), comm, int(c), int(s)) for p, pp, comm, c, s, _ in theirs],
          [(code.pid, me, "sh", 7, 0), (killed.pid, me, "sh", 0, signal.SIGKILL),
           (sleeper.pid, me, "sleep", 0, signal.SIGTERM),
           (leader_first.pid, me, os.path.basename(sys.executable)[:15], 5, 0)])
    # The age is read from the clock by each program in turn, on the same exit: the two
    # readings are microseconds apart, so whole milliseconds differ by at most one.
    ages = [(e["age_ms"], int(row[-1])) for e, row in zip(mine, theirs)]
    assert all(abs(a - b) <= 1 for a, b in ages), f"ebpf-run, bpftrace age_ms: {ages}"


def test_bashreadline_agrees_on_the_lines_and_pid():
    oracle = Bpftrace(
        'uretprobe:/bin/bash:readline /retval/ { printf("LINE %d %s\\n", pid, str(retval)); }')
    with oracle, tool("bashreadline") as run:
        run.wait_ready()
        pid, fd = pty.fork()
        if pid == 0:  # the child: an interactive bash on the pty, no rc files
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"],
                      {"TERM": "dumb", "PS1": "$ ", "PATH": "/usr/bin:/bin"})
        try:
            os.write(fd, b"echo er-oracle-line  two  spaces\n")
            run.wait_output(lambda out: any("er-oracle-line" in ln for ln in out))
            os.write(fd, b"exit\n")
            drain(fd)
        finally:
            os.waitpid(pid, 0)
        run.wait_output(lambda out: any('"line": "exit"' in ln for ln in out))
        oracle.wait_output(lambda out: any(ln == f"LINE {pid} exit" for ln in out))
        assert run.stop() == 0
        seen = oracle.stop()
    mine = [(e["pid"], e["line"]) for e in events(run) if e["pid"] == pid]
    prefix = f"LINE {pid} "
    theirs = [(pid, ln[len(prefix):]) for ln in seen if ln.startswith(prefix)]
    agree(mine, theirs, [(pid, "echo er-oracle-line  two  spaces"), (pid, "exit")])


# include/net/tcp_states.h: the oracle's raw numbers, named here and not by ebpf-run.
TCP_STATES = {1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT", 3: "TCP_SYN_RECV", 4: "TCP_FIN_WAIT1",
              5: "TCP_FIN_WAIT2", 6: "TCP_TIME_WAIT", 7: "TCP_CLOSE", 8: "TCP_CLOSE_WAIT",
              9: "TCP_LAST_ACK", 10: "TCP_LISTEN", 11: "TCP_CLOSING", 12: "TCP_NEW_SYN_RECV"}


def test_tcpstates_agrees_on_every_state_change_of_a_connection():
    proc = subprocess.Popen([sys.executable, "-c", connect_code("127.0.0.1")],
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        oracle = Bpftrace(
            "tracepoint:sock:inet_sock_set_state /args->protocol == 6/ {"
            ' printf("TCP %d %d %d %d %d %d %s %s\\n", nsecs, pid, args->sport, args->dport,'
            " args->oldstate, args->newstate, ntop(args->saddr), ntop(args->daddr)); }")
        with oracle, tool("tcpstates") as run:
            run.wait_ready()
            out, _ = proc.communicate("go\n", timeout=60)
            client, listener = (int(p) for p in out.split())
            # The listener closes last: its LISTEN -> CLOSE ends the sequence.
            run.wait_output(lambda lines: any(
                f'"sport": {listener}, "dport": 0, "oldstate": "TCP_LISTEN"' in ln
                for ln in lines))
            oracle.wait_output(lambda lines: any(
                f" {listener} 0 10 7 " in ln for ln in lines))
            assert run.stop() == 0
            seen = oracle.stop()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    mine = [(e["pid"], e["sport"], e["dport"], e["oldstate"], e["newstate"], e["saddr"],
             e["daddr"]) for e in events(run) if listener in (e["sport"], e["dport"])]
    # bpftrace's buffers are per CPU: its lines are put in time order by their clock.
    rows = sorted((int(t), *(int(f) for f in row[:5]), *row[5:])
                  for t, *row in fields(seen, "TCP"))
    theirs = [(p, s, d, TCP_STATES[o], TCP_STATES[n], sa, da)
              for _, p, s, d, o, n, sa, da in rows if listener in (s, d)]
    # The pid is whichever process was running (softirq work may run in another's time):
    # the two sides must agree on it; the trigger's sequence is in ports and states.
    assert mine == theirs, f"ebpf-run {mine} != bpftrace {theirs}"
    c, ls = client, listener
    assert {m[5] for m in mine} == {"127.0.0.1"}, mine
    assert {m[6] for m in mine} == {"127.0.0.1", "0.0.0.0"}, mine  # the listener has no peer
    agree([m[1:5] for m in mine], [t[1:5] for t in theirs], [
        (ls, 0, "TCP_CLOSE", "TCP_LISTEN"),
        (0, ls, "TCP_CLOSE", "TCP_SYN_SENT"),  # not bound yet: no source port
        (c, ls, "TCP_SYN_SENT", "TCP_ESTABLISHED"),
        (ls, c, "TCP_LISTEN", "TCP_SYN_RECV"),
        (ls, c, "TCP_SYN_RECV", "TCP_ESTABLISHED"),
        (c, ls, "TCP_ESTABLISHED", "TCP_FIN_WAIT1"),
        (ls, c, "TCP_ESTABLISHED", "TCP_CLOSE_WAIT"),
        (ls, c, "TCP_CLOSE_WAIT", "TCP_LAST_ACK"),
        (c, ls, "TCP_FIN_WAIT1", "TCP_FIN_WAIT2"),
        (c, ls, "TCP_FIN_WAIT2", "TCP_CLOSE"),
        (ls, c, "TCP_LAST_ACK", "TCP_CLOSE"),
        (ls, 0, "TCP_LISTEN", "TCP_CLOSE"),
    ])
