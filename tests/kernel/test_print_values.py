"""`print` of any value (issue 25), run for real: a syscall's result at its exit, through
a decoder too, for a workload whose results are known; the string a `cat` opened, read
from user memory; a looked-up value and a tracepoint's own fields. Exact texts and JSON."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from harness import Run

# lseek's result is the new offset, or -errno: 12345, then -22 (EINVAL) for a negative one.
LSEEK = """\
name: print_lseek
maps:
  whence: {type: hash, key: u32, value: u32}
probes:
  enter:
    attach: {syscall: lseek}
    do:
      - if: 'comm == "er-lseek"'
        then: [{store: {map: whence, key: tid, value: args.whence}}]
  exit:
    attach: {syscall_exit: lseek}
    do:
      - let: {w: {lookup: {map: whence, key: tid}}}
      - print: "lseek whence={w} -> {args.ret} {args.ret:syscall_ret:>8}|"
      - delete: {map: whence, key: tid}
"""

WORKLOAD = """\
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, b"er-lseek", 0, 0, 0)  # PR_SET_NAME: this thread's comm
fd = os.open(sys.argv[1], os.O_RDONLY)
print(os.lseek(fd, 12345, os.SEEK_SET), flush=True)
try:
    os.lseek(fd, -1, os.SEEK_SET)
except OSError as e:
    print(-e.errno, flush=True)
"""

CAT_OPENS = """\
name: print_cat
params:
  tag: {type: "char[8]", default: "opened"}
probes:
  open:
    attach: {syscall: openat}
    do:
      - if: 'comm == "cat" && startswith(args.filename, "%s")'
        then: [{print: "{comm} {params.tag} {args.filename!r} flags={args.flags:open_flags}"}]
"""


def _messages(run: Run):
    return [r for r in run.json() if r.get("type") == "message"]


def test_print_of_a_syscall_result_at_its_exit_and_decoded(tmp_path):
    spec = tmp_path / "lseek.yaml"
    spec.write_text(LSEEK)
    with Run(str(spec), "--json").wait_ready() as run:
        done = subprocess.run([sys.executable, "-c", WORKLOAD, str(spec)], capture_output=True,
                              text=True, check=True)
        assert done.stdout.split() == ["12345", "-22"]
        run.wait_output(lambda out: sum('"message"' in ln for ln in out) >= 2)
        assert run.stop() == 0
    assert _messages(run) == [
        {"type": "message", "text": "lseek whence=0 -> 12345    12345|",
         "data": {"w": 0, "ret": 12345, "ret_name": "12345"}},
        {"type": "message", "text": "lseek whence=0 -> -22   EINVAL|",
         "data": {"w": 0, "ret": -22, "ret_name": "EINVAL"}},
    ]


def test_print_of_the_file_cat_opened_read_from_user_memory(tmp_path):
    known = tmp_path / "known.txt"
    known.write_text("x")
    spec = tmp_path / "cat.yaml"
    spec.write_text(CAT_OPENS % tmp_path)
    with Run(str(spec), "--set", "tag=saw").wait_ready() as run:
        subprocess.run(["/bin/cat", str(known)], stdout=subprocess.DEVNULL, check=True)
        run.wait_output(lambda out: any(str(known) in ln for ln in out))
        assert run.stop() == 0
    assert [ln for ln in run.out if str(tmp_path) in ln] == [
        f"cat saw '{known}' flags=O_RDONLY"]


# Six 128-byte string parameters, a __data_loc string (256 bytes) and a looked-up char[200]:
# a 1,2xx-byte record, reserved in the ring buffer and zeroed by a word loop, never on the
# 512-byte stack.
BIG = """\
name: print_big
params:
%s
structs:
  kept: [{path: 'char[200]'}, {at: u64}]
maps:
  h: {type: hash, key: u32, value: kept}
probes:
  exec:
    attach: {tracepoint: "sched:sched_process_exec"}
    do:
      - if: 'comm == "er-big-probe"'
        then:
          - store: {map: h, key: tid, value: {path: args.filename, at: ktime}}
          - let: {k: {lookup: {map: h, key: tid}}}
          - print: "{args.filename} {k.path} {comm} %s {args.pid} {ppid}"
          - delete: {map: h, key: tid}
"""


def test_a_print_of_over_a_kib_of_strings_loads_and_shows_them(tmp_path):
    binary = tmp_path / "er-big-probe"
    shutil.copy("/bin/true", binary)
    spec = tmp_path / "big.yaml"
    spec.write_text(BIG % ("\n".join(f'  {n}: {{type: "char[128]", default: "{n * 3}"}}'
                                      for n in "abcdef"),
                           "".join(f"{{params.{n}}}" for n in "abcdef")))
    with Run(str(spec)).wait_ready() as run:
        child = subprocess.Popen([str(binary)])
        child.wait()
        run.wait_output(lambda out: any(str(binary) in ln for ln in out))
        assert run.stop() == 0
    assert run.out == [f"{binary} {binary} er-big-probe aaabbbcccdddeeefff {child.pid} "
                       f"{os.getpid()}"]
