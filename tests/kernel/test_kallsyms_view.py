"""The compile's short /proc/kallsyms (runner/kernel/kallsyms_view.py) and the load begun
early (runner/kernel/load.py): only the compile sees the two lines, nothing stays mounted
or written, no other namespace sees the mount, BCC makes the same programs instruction for
instruction, and a load nobody took is released."""

from __future__ import annotations

import glob
import os
import threading

import pytest
from harness import ROOT

from runner.kernel import kallsyms_view, load, object_cache
from runner.kernel.bcc import import_bcc
from runner.pipeline import compile_spec

KALLSYMS = kallsyms_view.KALLSYMS
SHORT = kallsyms_view._LINES.decode()
# The VM compiles ~10 s a program: there, two specs whose programs read memory through
# the helpers BCC picks by what /proc/kallsyms says (user strings; a kernel array).
IN_VM = {"execsnoop", "tcpstates"}
SPECS = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("specs/**/*.yaml"))]
SPECS.append("bench/getppid.yaml")


def spec_params():
    out = []
    for s in SPECS:
        name = os.path.basename(s)[:-5]
        out.append(pytest.param(s, id=name,
                                marks=() if name in IN_VM else (pytest.mark.host_only,)))
    return out


def mount_lines(mountinfo: str):
    return [ln for ln in mountinfo.splitlines() if " /proc/kallsyms " in ln]


def test_only_the_compile_sees_the_short_file():
    main_tid = threading.get_native_id()

    def compile_like() -> tuple:
        # What the compile's thread sees, and what the caller's thread and the host's
        # first process see at the same moment.
        with open(KALLSYMS) as f:
            seen = f.read()
        with open(f"/proc/{os.getpid()}/task/{main_tid}/mountinfo") as f:
            caller = f.read()
        with open("/proc/1/mountinfo") as f:
            host = f.read()
        with open("/proc/thread-self/mountinfo") as f:
            own = f.read()
        return seen, caller, host, own

    seen, caller, host, own = kallsyms_view.run(compile_like)
    assert seen == SHORT
    assert len(mount_lines(own)) == 1
    # The scratch tmpfs that held the file is gone: only the bind of the file remains.
    assert [ln for ln in own.splitlines() if " tmpfs ebpf-run " in ln] == mount_lines(own)
    assert mount_lines(caller) == [] and mount_lines(host) == []
    with open(KALLSYMS) as f:
        assert sum(1 for _ in f) > 1000  # the real file, in this thread, after
    assert glob.glob("/run/ebpf-run-*") == glob.glob("/run/kallsyms") == []


def test_an_exception_in_the_compile_reaches_the_caller():
    def fails() -> None:
        raise ValueError("from the compile's thread")

    with pytest.raises(ValueError, match="compile's thread"):
        kallsyms_view.run(fails)


def normalized(obj: object_cache.CompiledObject) -> tuple:
    """The object with every map fd set to 0: fds differ from one compile to the next."""
    zeros = [0] * len(obj.maps)
    funcs = tuple((name, bytes(object_cache.patched(bytes.fromhex(insns), fixups, zeros)))
                  for name, insns, fixups in obj.functions)
    return obj.license, obj.maps, funcs


def compiled(bcc, c_source: str, view: bool) -> tuple:
    kallsyms_view.enabled = view
    try:
        bpf = load.Loading(bcc, c_source).result()
    finally:
        kallsyms_view.enabled = True
    try:
        obj = object_cache.capture(bcc, bpf)
        assert obj is not None
        return normalized(obj)
    finally:
        bpf.cleanup()


@pytest.mark.parametrize("spec", spec_params())
def test_programs_are_the_same_as_with_the_real_file(spec, monkeypatch):
    monkeypatch.setenv("EBPF_RUN_NO_CACHE", "1")
    bcc = import_bcc()
    c_source = compile_spec(str(ROOT / spec)).rendered.c
    with_view = compiled(bcc, c_source, True)
    assert with_view == compiled(bcc, c_source, False)
    assert with_view[2], "no function compiled"


def map_fds() -> int:
    """How many BPF maps this process holds open (a compile creates the spec's maps)."""
    def link(fd: str) -> str:
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return ""
    return sum(1 for fd in os.listdir("/proc/self/fd") if link(fd) == "anon_inode:bpf-map")


def test_a_load_nobody_took_is_released(monkeypatch):
    monkeypatch.setenv("EBPF_RUN_NO_CACHE", "1")
    c_source = compile_spec(str(ROOT / "bench" / "getppid.yaml")).rendered.c
    before = map_fds()
    loading = load.begin(c_source)
    loading.discard()  # waits for the compile still running, then releases its maps
    assert map_fds() == before
    taken = load.begin(c_source)
    bpf = taken.result()
    assert map_fds() == before + 3  # events, er_drops, er_wake
    taken.discard()  # the caller owns it now: discard must not release it
    try:
        assert map_fds() == before + 3
    finally:
        bpf.cleanup()
    assert map_fds() == before
