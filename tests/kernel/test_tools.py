"""The tools in specs/tools, run for real against triggers whose values are known exactly,
with bpftrace running the equivalent program on the same trigger as an oracle."""

from __future__ import annotations

import ctypes
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
from bpftrace_oracle import Bpftrace, needs_bpftrace
from harness import ROOT, SLOW, Run, drain

# host_only: the tools' values side by side with bpftrace; on the second kernel the tools run
# through their own cases (test_spec_tests.py).
pytestmark = pytest.mark.host_only

TOOLS = ROOT / "specs" / "tools"


def tool(name: str, *args: str) -> Run:
    return Run(str(TOOLS / f"{name}.yaml"), "--json", *args).wait_ready()


def events(run: Run) -> List[Dict]:
    return [r["data"] for r in run.json() if r.get("type") == "event"]


def printed(run: Run) -> List[Dict]:
    """The values of the messages a tool's `print` sent (killsnoop), by their JSON keys."""
    return [r["data"] for r in run.json() if r.get("type") == "message"]


def _unique(tmp_path: Path, name: str, source: str) -> Path:
    """A copy of a binary under a name no other process on the machine has."""
    dest = tmp_path / name
    shutil.copy(source, dest)
    return dest


@needs_bpftrace
def test_opensnoop_shows_the_file_cat_opened_its_fd_and_enoent(tmp_path):
    known = tmp_path / "known.txt"
    known.write_text("x" * 100)
    missing = tmp_path / "does-not-exist"
    oracle = Bpftrace(
        'tracepoint:syscalls:sys_enter_openat /comm == "cat"/ { @f[tid] = args->filename; }'
        ' tracepoint:syscalls:sys_exit_openat /@f[tid]/ {'
        ' printf("OPEN %d %s %d\\n", pid, str(@f[tid]), args->ret); delete(@f[tid]); }')
    with tool("opensnoop") as run:
        ok = subprocess.Popen(["/bin/cat", str(known)], stdout=subprocess.DEVNULL)
        ok.wait()
        bad = subprocess.Popen(["/bin/cat", str(missing)], stderr=subprocess.DEVNULL)
        bad.wait()
        run.wait_output(lambda out: sum(str(tmp_path) in ln for ln in out) >= 2)
        assert run.stop() == 0
    seen = oracle.stop()
    mine = [e for e in events(run) if str(tmp_path) in e["filename"]]
    assert mine == [
        {"pid": ok.pid, "flags": 0, "ret": 3, "comm": "cat", "filename": str(known)},
        {"pid": bad.pid, "flags": 0, "ret": -2, "comm": "cat", "filename": str(missing)},
    ]
    assert [ln for ln in seen if str(tmp_path) in ln] == [
        f"OPEN {e['pid']} {e['filename']} {e['ret']}" for e in mine]


@needs_bpftrace
def test_execsnoop_shows_the_pid_parent_and_file_of_an_exec(tmp_path):
    binary = _unique(tmp_path, "er-exec-probe", "/bin/true")
    oracle = Bpftrace(
        'tracepoint:syscalls:sys_enter_execve { printf("EXEC %d %d %s\\n", pid, '
        'curtask->real_parent->tgid, str(args->filename)); }')
    with tool("execsnoop") as run:
        child = subprocess.Popen([str(binary)])
        child.wait()
        run.wait_output(lambda out: any(str(binary) in ln for ln in out))
        assert run.stop() == 0
    seen = oracle.stop()
    mine = [e for e in printed(run) if e["filename"] == str(binary)]
    assert len(mine) == 1
    # At execve's entry the task is still the forked python: its name is python's.
    assert {k: mine[0][k] for k in ("pid", "ppid", "uid", "filename")} == {
        "pid": child.pid, "ppid": os.getpid(), "uid": os.getuid(), "filename": str(binary)}
    assert [ln for ln in seen if str(binary) in ln] == [
        f"EXEC {child.pid} {os.getpid()} {binary}"]


def test_execsnoop_pid_parameter_keeps_only_that_process(tmp_path):
    # A shell waits on stdin: its pid is known before it execs, and goes on the command line.
    shell = subprocess.Popen(["/bin/sh"], stdin=subprocess.PIPE)
    spec = TOOLS / "execsnoop.yaml"
    mine = _unique(tmp_path, "er-exec-mine", "/bin/true")
    other = _unique(tmp_path, "er-exec-other", "/bin/true")
    try:
        with Run(str(spec), "--json", "--set", f"pid={shell.pid}").wait_ready() as run:
            subprocess.run([str(other)], check=True)
            assert shell.stdin is not None
            shell.stdin.write(f"exec {mine}\n".encode())
            shell.stdin.close()
            assert shell.wait(10) == 0
            run.wait_output(lambda out: any(str(mine) in ln for ln in out))
            assert run.stop() == 0
    finally:
        shell.kill()
    assert [e["filename"] for e in printed(run)] == [str(mine)]


def test_exitsnoop_shows_the_exit_code_of_sh_exit_7():
    with tool("exitsnoop") as run:
        sh = subprocess.Popen(["/bin/sh", "-c", "exit 7"])
        assert sh.wait() == 7
        run.wait_output(lambda out: any(f'"pid": {sh.pid},' in ln for ln in out))
        assert run.stop() == 0
    mine = [e for e in printed(run) if e["pid"] == sh.pid]
    assert len(mine) == 1
    assert {k: mine[0][k] for k in ("pid", "ppid", "comm", "code", "signal")} == {
        "pid": sh.pid, "ppid": os.getpid(), "comm": "sh", "code": 7, "signal": 0}
    assert 0 <= mine[0]["age_ms"] < 5000 * SLOW


def test_exitsnoop_shows_the_signal_that_killed_a_process():
    with tool("exitsnoop") as run:
        sleeper = subprocess.Popen(["/bin/sleep", "30"])
        time.sleep(0.2)
        sleeper.send_signal(signal.SIGTERM)
        sleeper.wait()
        run.wait_output(lambda out: any(f'"pid": {sleeper.pid},' in ln for ln in out))
        assert run.stop() == 0
    mine = [e for e in printed(run) if e["pid"] == sleeper.pid]
    assert [(e["comm"], e["code"], e["signal"]) for e in mine] == [("sleep", 0, 15)]


# The leader thread ends alone (the raw exit syscall, 60 on x86-64 and 93 on aarch64, ends
# only the calling thread); the other thread waits until the leader is a zombie, then ends the
# process: exit(5).
LEADER_FIRST = """
import ctypes, os, threading
def last():
    while open(f"/proc/self/task/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
        os.sched_yield()
    os._exit(5)
threading.Thread(target=last).start()
ctypes.CDLL(None).syscall({"x86_64": 60, "aarch64": 93}[os.uname().machine], 0)
"""

# A thread that is not the leader execs: the kernel ends the leader, and the process goes on
# (same pid) as the exec'd shell, which exits 3.
EXEC_FROM_THREAD = """
import os, threading
threading.Thread(target=os.execv, args=("/bin/sh", ["sh", "-c", "exit 3"])).start()
threading.Event().wait()
"""


def _exits_of(script: str, code: int) -> List[Dict]:
    with tool("exitsnoop") as run:
        proc = subprocess.Popen([sys.executable, "-c", script])
        assert proc.wait(30) == code
        run.wait_output(lambda out: any(f'"pid": {proc.pid},' in ln for ln in out))
        assert run.stop() == 0
    return [e for e in printed(run) if e["pid"] == proc.pid]


def test_exitsnoop_reports_a_process_whose_leader_exits_first_once_with_its_code():
    mine = _exits_of(LEADER_FIRST, 5)
    assert [(e["ppid"], e["code"], e["signal"]) for e in mine] == [(os.getpid(), 5, 0)]
    assert 0 <= mine[0]["age_ms"] < 5000 * SLOW


def test_exitsnoop_leaves_out_the_leader_an_exec_from_another_thread_ends():
    mine = _exits_of(EXEC_FROM_THREAD, 3)
    assert [(e["comm"], e["code"], e["signal"]) for e in mine] == [("sh", 3, 0)]


def test_killsnoop_shows_sender_target_signal_and_result():
    free_pid = next(p for p in range(4_000_000, 3_000_000, -1) if not os.path.exists(f"/proc/{p}"))
    with tool("killsnoop") as run:
        sleeper = subprocess.Popen(["/bin/sleep", "30"])
        os.kill(sleeper.pid, signal.SIGTERM)
        sleeper.wait()
        with pytest.raises(ProcessLookupError):
            os.kill(free_pid, 0)
        run.wait_output(lambda out: any(f'"target": {free_pid},' in ln for ln in out))
        assert run.stop() == 0
    mine = [(e["pid"], e["target"], e["signal"], e["ret"]) for e in printed(run)
            if e["target"] in (sleeper.pid, free_pid)]
    assert mine == [(os.getpid(), sleeper.pid, 15, 0), (os.getpid(), free_pid, 0, -3)]


def test_readbytes_sums_what_read_returned_per_command(tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(b"y" * 123_457)
    # Two copies of cat under unique names: the one reading the file and the one reading
    # nothing read the same loader and library bytes, so the difference is the file's size.
    full = _unique(tmp_path, "er_rb_full", "/bin/cat")
    empty = _unique(tmp_path, "er_rb_empty", "/bin/cat")
    env = {"LANG": "C", "LC_ALL": "C", "PATH": "/usr/bin:/bin"}
    with Run(str(TOOLS / "readbytes.yaml"), "--json").wait_ready() as run:
        subprocess.run([str(full), str(data)], stdout=subprocess.DEVNULL, env=env, check=True)
        subprocess.run([str(empty), "/dev/null"], stdout=subprocess.DEVNULL, env=env,
                       check=True)
        time.sleep(0.3 * SLOW)
        assert run.stop() == 0
    totals = {r["key"]["comm"]: r["value"] for r in run.json()
              if r.get("type") == "map" and r["map"] == "bytes" and r["kind"] == "sum"}
    assert totals["er_rb_full"] - totals["er_rb_empty"] == 123_457


def test_bashreadline_shows_a_line_typed_into_an_interactive_bash():
    with tool("bashreadline") as run:
        pid, fd = pty.fork()
        if pid == 0:  # the child: an interactive bash on the pty, no rc files
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"],
                      {"TERM": "dumb", "PS1": "$ ", "PATH": "/usr/bin:/bin"})
        os.write(fd, b"echo er-readline-42\n")
        run.wait_output(lambda out: any("er-readline-42" in ln for ln in out))
        os.write(fd, b"exit\n")
        drain(fd)
        os.waitpid(pid, 0)
        assert run.stop() == 0
    mine = [e for e in events(run) if e["pid"] == pid]
    assert mine[0] == {"pid": pid, "line": "echo er-readline-42"}


def test_opensnoop_raw_tracepoint_fallbacks_give_the_same_values(tmp_path):
    """The kernel stage attaches the first option that works (here the tracepoints), so the
    raw sys_enter / sys_exit fallbacks are attached here directly, with BCC, from the same
    rendered program: the named arguments and the result must read the same."""
    from bcc import BPF

    from runner.codegen.render import render_c
    from runner.pipeline import check

    spec = check(str(TOOLS / "opensnoop.yaml"))
    struct = next(s for s in spec.structs if s.name == "open_event")
    known = tmp_path / "known.txt"
    known.write_text("x")
    missing = tmp_path / "missing"
    got = []

    def record(ctx, data, size):
        raw = bytes((ctypes.c_char * size).from_address(data))
        fields = {m.name: raw[m.offset:m.offset + m.size] for m in struct.layout.fields}
        text = {k: v.split(b"\0")[0].decode() for k, v in fields.items() if k in
                ("comm", "filename")}
        if str(tmp_path) in text["filename"]:
            got.append({**text, **{k: int.from_bytes(v, "little", signed=True)
                                   for k, v in fields.items() if k not in text}})

    b = BPF(text=render_c(spec).encode())
    try:
        probes = {p.name: p for p in spec.probes}  # the exit: one probe on four syscalls
        for probe, tp in ((probes["enter"], b"sys_enter"), (probes["exit"], b"sys_exit")):
            raw = next(c for c in probe.candidates if c.kind == "raw_tracepoint")
            b.attach_raw_tracepoint(tp=tp, fn_name=raw.function.c_name.encode())
        b[b"events"].open_ring_buffer(record)
        ok = subprocess.Popen(["/bin/cat", str(known)], stdout=subprocess.DEVNULL)
        ok.wait()
        bad = subprocess.Popen(["/bin/cat", str(missing)], stderr=subprocess.DEVNULL)
        bad.wait()
        time.sleep(0.2 * SLOW)
        b.ring_buffer_poll(500)
    finally:
        b.cleanup()
    assert got == [
        {"pid": ok.pid, "flags": 0, "ret": 3, "comm": "cat", "filename": str(known)},
        {"pid": bad.pid, "flags": 0, "ret": -2, "comm": "cat", "filename": str(missing)},
    ]


def test_bashreadline_program_reads_a_typed_line_when_attached_as_a_uretprobe():
    """Until the kernel stage has a uretprobe hook, the rendered program is attached here
    with BCC's attach_uretprobe, as the hook will: the line comes back exact."""
    from bcc import BPF

    from runner.codegen.render import render_c
    from runner.pipeline import check

    spec = check(str(TOOLS / "bashreadline.yaml"))
    fn = spec.probes[0].candidates[0].function.c_name
    got = []

    def record(ctx, data, size):
        raw = bytes((ctypes.c_char * size).from_address(data))
        got.append((int.from_bytes(raw[:4], "little"), raw[4:].split(b"\0")[0].decode()))

    b = BPF(text=render_c(spec).encode())
    try:
        b.attach_uretprobe(name=b"/bin/bash", sym=b"readline", fn_name=fn.encode())
        b[b"events"].open_ring_buffer(record)
        pid, fd = pty.fork()
        if pid == 0:
            os.execve("/bin/bash", ["bash", "--norc", "--noprofile", "-i"],
                      {"TERM": "dumb", "PS1": "$ ", "PATH": "/usr/bin:/bin"})
        time.sleep(0.5 * SLOW)  # bash reaches readline
        os.write(fd, b"echo er-readline-42\n")
        time.sleep(0.3 * SLOW)
        os.write(fd, b"exit\n")
        drain(fd)
        os.waitpid(pid, 0)
        b.ring_buffer_poll(500)
    finally:
        b.cleanup()
    assert got[:2] == [(pid, "echo er-readline-42"), (pid, "exit")]
