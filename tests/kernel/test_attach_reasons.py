"""An attach the kernel refuses with EPERM says why, through BCC or through a link.

As root, the kernel rarely refuses an attach; a seccomp filter makes perf_event_open fail
with EPERM for ebpf-run alone (and its children), as a security module or a container's
profile would. Loading still works (no perf event is needed for it), so the failure is
the attach's, and the error must carry the system call's own words.
"""

from __future__ import annotations

import ctypes as ct
import errno
import os
import struct
import subprocess
import sys
import textwrap

import pytest
from harness import ROOT

# seccomp: (AUDIT_ARCH_*, perf_event_open's number) per machine.
ARCH = {"x86_64": (0xC000003E, 298), "aarch64": (0xC00000B7, 241)}


def deny_perf_event_open() -> None:
    """In the child before exec: perf_event_open fails with EPERM, everything else runs."""
    arch, nr = ARCH[os.uname().machine]
    ld, jeq, ret = 0x20, 0x15, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    prog = [(ld, 0, 0, 4), (jeq, 0, 3, arch), (ld, 0, 0, 0), (jeq, 0, 1, nr),
            (ret, 0, 0, 0x00050000 | errno.EPERM), (ret, 0, 0, 0x7FFF0000)]
    code = ct.create_string_buffer(b"".join(struct.pack("HBBI", *i) for i in prog))
    fprog = ct.create_string_buffer(struct.pack("HxxxxxxQ", len(prog), ct.addressof(code)))
    libc = ct.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.prctl(22, 2, fprog, 0, 0) != 0:  # NO_NEW_PRIVS,
        os._exit(99)  # SECCOMP (mode filter): the test asserts rc != 99


SPEC = """\
    name: denied
    probes:
      denied:
        attach: {tracepoint: "syscalls:sys_enter_getppid"}
        do: [{print: "getppid"}]
    """


@pytest.mark.skipif(os.uname().machine not in ARCH, reason="seccomp filter for x86-64/arm64")
@pytest.mark.parametrize("how", ["link", "bcc"])
def test_an_eperm_attach_gives_the_kernels_reason(tmp_path, how):
    spec = tmp_path / "spec.yaml"
    spec.write_text(textwrap.dedent(SPEC))
    out = subprocess.run([sys.executable, "-m", "runner", str(spec), "--duration", "5"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120,
                         preexec_fn=deny_perf_event_open,
                         env={**os.environ, "EBPF_RUN_TRACEPOINT_ATTACH": how})
    assert out.returncode == 3, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    line = next(ln for ln in out.stderr.splitlines() if "tracepoint syscalls:sys_enter_getppid"
                in ln)
    assert "perf_event_open" in line and "Operation not permitted" in line, out.stderr
    if how == "link":
        assert line.endswith("Operation not permitted (EPERM)"), line
