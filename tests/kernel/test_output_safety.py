"""Text output cannot be forged or steered by the traced system: a process named with a
newline, CR or an escape sequence is printed escaped, on one line, on every path (ring
buffer batch, perf buffer, messages, map dumps); JSON keeps the exact name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from harness import ROOT, SPECS, Run

# host_only: escaping in user space: the same on every kernel.
pytestmark = pytest.mark.host_only

# At most 15 bytes: the kernel keeps 16 with the NUL.
FORGED = "a\nEVENT pid=1 c"
STEERING = "\x1b[31mred\r\\x"
ESCAPED = {FORGED: "a\\nEVENT pid=1 c", STEERING: "\\x1b[31mred\\r\\\\x"}

SPEC = """\
name: output-safety
structs:
  ev_t:
    - pid: s32
    - command: char[16]
  name_t:
    - name: char[16]
maps:
  ring: {type: ringbuf, value: ev_t}
  perf: {type: perf_event_array, value: ev_t}
  by_name: {type: hash, key: name_t, value: u64}
probes:
  hello:
    attach: {syscall: execve}
    do:
      - emit: {to: ring, set: {pid: pid, command: comm}}
      - emit: {to: perf, set: {pid: pid, command: comm}}
      - print: "M {comm}"
      - count: {map: by_name, key: {name: comm}}
output:
  - events: ring
    format: "R {command}"
  - events: perf
    format: "P {command}"
  - map: by_name
    format: "K {key[name]}"
"""

# prctl(PR_SET_NAME) renames the process; the execve that follows is traced with that name.
RENAME_AND_EXEC = ("import ctypes, os, sys; ctypes.CDLL(None).prctl(15, sys.argv[1].encode()); "
                   "os.execv('/bin/true', ['/bin/true'])")


def exec_named(name: str) -> None:
    subprocess.run([sys.executable, "-c", RENAME_AND_EXEC, name], check=True)


def write_spec(tmp_path) -> str:
    # Messages go through the message buffer: trace_pipe messages cannot carry strings.
    path = tmp_path / "output-safety.yaml"
    path.write_text(SPEC)
    return str(path)


def run_until(tmp_path, done, *flags) -> Run:
    """Run the spec, exec the hostile names until done(stdout lines), stop; the Run."""
    run = Run(write_spec(tmp_path), *flags).wait_ready()

    def seen(lines) -> bool:
        if done(lines):
            return True
        exec_named(FORGED)
        exec_named(STEERING)
        return False

    try:
        run.wait_output(seen, what="the hostile names in the output")
    finally:
        assert run.stop() == 0, run.err
    return run


def test_a_hostile_process_name_is_escaped_on_one_line_in_text_output(tmp_path):
    wanted = {f"{kind} {ESCAPED[name]}" for kind in "RPM" for name in ESCAPED}
    run = run_until(tmp_path, lambda lines: wanted <= set(lines))
    dumped = {ln for ln in run.out if ln.startswith("K ")}
    assert {f"K {ESCAPED[FORGED]}", f"K {ESCAPED[STEERING]}"} <= dumped
    # Nothing forged a line of its own, and nothing a terminal obeys got through.
    assert not [ln for ln in run.out if ln.startswith("EVENT")]
    assert not [ln for ln in run.out if "\x1b" in ln or "\r" in ln]


def test_json_output_keeps_the_exact_process_name(tmp_path):
    def exact(lines) -> bool:
        return FORGED in {json.loads(ln).get("data", {}).get("command") for ln in lines}

    run = run_until(tmp_path, exact, "--json")
    records = [json.loads(ln) for ln in run.out]
    assert {r["channel"] for r in records
            if r["type"] == "event" and r["data"]["command"] == FORGED} == {"ring", "perf"}
    assert any(r["type"] == "message" and r["data"] == {"comm": FORGED} for r in records)
    keys = [e["key"] for r in records if r["type"] == "map" for e in r["entries"]]
    assert {"name": FORGED} in keys


FULL = "ebpf-run: error: cannot write to standard output: No space left on device"


def ebpf_run_to_full(*args, env=None):
    with open("/dev/full", "w") as full:
        return subprocess.run([sys.executable, "-m", "runner", *args], cwd=ROOT, stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=120,
                              env={**os.environ, **(env or {})})


@pytest.mark.parametrize("flags", [(), ("--json",)])
def test_a_run_whose_stdout_is_full_ends_with_its_summary_and_one_error(flags):
    # hello-map dumps its map at exit whatever happened, so there is always a record to
    # write; with --json the attach records come first.
    res = ebpf_run_to_full(str(SPECS / "hello-map.yaml"), "--duration", "1", *flags)
    lines = res.stderr.splitlines()
    assert res.returncode == 3, res.stderr
    assert lines[-1] == FULL
    assert lines[-2].startswith("ebpf-run: summary: ran ")
    assert "Traceback" not in res.stderr


def test_doctor_with_a_full_stdout_is_one_error():
    res = ebpf_run_to_full("doctor")
    assert res.returncode == 3
    assert res.stderr.splitlines()[-1] == FULL
    assert "Traceback" not in res.stderr


def test_what_libbcc_prints_on_stdout_never_enters_the_json_stream(tmp_path):
    """libbcc writes "Unable to find kernel headers..." with std::cout while compiling when
    BCC_KERNEL_SOURCE (or /lib/modules/RELEASE/build) has no include/linux/kconfig.h."""
    res = subprocess.run([sys.executable, "-m", "runner", str(SPECS / "hello.yaml"), "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "BCC_KERNEL_SOURCE": str(tmp_path)})
    assert res.returncode == 3
    assert res.stdout == ""
    assert "Unable to find kernel headers" in res.stderr


# Strings a real process hands the kernel, read into a char[16] by bpf_probe_read_user_str:
# the read fails on a bad pointer; a long one is cut where a UTF-8 character starts (the
# dots go at byte 12 unless a character straddles it); bytes that are not UTF-8 stay
# available in JSON.
STRINGS_SPEC = """\
name: strings
structs:
  ev_t:
    - pid: u32
    - path: char[16]
    - name: char[16]
maps:
  ring: {type: ringbuf, value: ev_t}
probes:
  open:
    attach: {syscall: openat}
    do:
      - if: 'startswith(comm, "er-strings")'
        then:
          - emit: {to: ring, set: {pid: pid, path: args.filename, name: comm}}
output:
  - events: ring
    format: "[{path}] {name}"
"""

# (what openat is given, what text output shows, JSON's data beside the pid and name)
PATHS = [
    (b"", "[]", {"path": ""}),
    (b"/aaaaaaaaaa\xc3\xa9zzzz", "[/aaaaaaaaaa...]", {"path": "/aaaaaaaaaa..."}),  # é cut
    (b"/aaaaaaaaa\xe2\x82\xaczzzz", "[/aaaaaaaaa...]", {"path": "/aaaaaaaaa..."}),  # €
    (b"/aaaaaaaa\xf0\x9f\x98\x80zzzz", "[/aaaaaaaa...]", {"path": "/aaaaaaaa..."}),  # 😀
    (b"/aaaaaaaaa\xc3\xa9zzzz", "[/aaaaaaaaaé...]", {"path": "/aaaaaaaaaé..."}),  # é whole
    (b"/x\xff\xfe", "[/x\ufffd\ufffd]", {"path": "/x\ufffd\ufffd", "path_hex": "2f78fffe"}),
    (None, "[<read failed: EFAULT>]", {"path": None, "path_error": "EFAULT"}),  # address 1
]

OPEN_EACH = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.prctl(15, b"er-strings")
for p in [bytes.fromhex(h) for h in sys.argv[1:]]:
    libc.syscall(257, -100, ctypes.c_char_p(p), 0)  # openat(AT_FDCWD, p, 0)
libc.syscall(257, -100, ctypes.c_void_p(1), 0)  # an address no process maps: EFAULT
# A name of 16 bytes: the kernel keeps 15, cutting the last character in two.
libc.prctl(15, "er-strings-abcé".encode())
libc.syscall(257, -100, ctypes.c_char_p(b"/cut"), 0)
"""
CUT_NAME = "er-strings-abc"  # shown without the broken byte, which is not bad data either


def _strings_run(tmp_path, *flags: str) -> Run:
    spec = tmp_path / "strings.yaml"
    spec.write_text(STRINGS_SPEC)
    run = Run(str(spec), *flags).wait_ready()
    try:
        child = subprocess.run([sys.executable, "-c", OPEN_EACH,
                                *(p.hex() for p, _, _ in PATHS if p is not None)], timeout=60)
        assert child.returncode == 0
        run.wait_output(lambda out: len(out) - ("--json" in flags) > len(PATHS),
                        what="an event per path")
    finally:
        assert run.stop() == 0, run.err
    return run


def test_text_shows_cut_strings_whole_characters_and_a_failed_read_as_such(tmp_path):
    assert _strings_run(tmp_path).out == [f"{shown} er-strings" for _, shown, _ in PATHS] + \
        [f"[/cut] {CUT_NAME}"]


def test_json_gives_a_failed_read_as_null_and_bytes_that_are_not_utf8(tmp_path):
    events = [r["data"] for r in map(json.loads, _strings_run(tmp_path, "--json").out)
              if r["type"] == "event"]
    assert [{k: v for k, v in e.items() if k != "pid"} for e in events] == \
        [{**data, "name": "er-strings"} for _, _, data in PATHS] + \
        [{"path": "/cut", "name": CUT_NAME}]


STRUCT_KEY_SPEC = """\
name: paths
structs:
  path_key:
    - pid: u32
    - path: char[16]
maps:
  opened: {type: hash, key: path_key, value: u64}
probes:
  open:
    attach: {syscall: openat}
    do:
      - if: 'startswith(comm, "er-strings")'
        then:
          - count: {map: opened, key: {pid: pid, path: args.filename}}
output:
  - map: opened
    format: "[{key[path]}] {value}"
"""


def test_a_failed_read_in_a_struct_key_is_shown_as_such(tmp_path):
    """A string read into a struct key showed a failed read as an empty string (the field's
    own decoder looked, the struct's did not), in text and JSON alike."""
    spec = tmp_path / "paths.yaml"
    spec.write_text(STRUCT_KEY_SPEC)
    for flags in ((), ("--json",)):
        run = Run(str(spec), *flags).wait_ready()
        try:
            opened = subprocess.run([sys.executable, "-c", OPEN_EACH, b"".hex(), b"/p".hex()],
                                    timeout=60)
            assert opened.returncode == 0
        finally:
            assert run.stop() == 0, run.err
        if not flags:
            assert sorted(run.out) == sorted(["[] 1", "[/p] 1", "[<read failed: EFAULT>] 1",
                                              "[/cut] 1"]), run.out
            continue
        keys = [e["key"] for r in map(json.loads, run.out) if r.get("type") == "map"
                for e in r["entries"]]
        assert sorted((k["path"] is None, k["path"] or "", k.get("path_error")) for k in keys) \
            == [(False, "", None), (False, "/cut", None), (False, "/p", None),
                (True, "", "EFAULT")], keys
