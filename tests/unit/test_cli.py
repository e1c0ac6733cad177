"""The command line: exit codes and the commands that need no kernel."""

from __future__ import annotations

import subprocess
import sys

from .util import ROOT


def ebpf_run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_validate_every_shipped_spec():
    specs = sorted(str(p) for p in (ROOT / "specs").glob("*.yaml"))
    res = ebpf_run("validate", *specs)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(": ok (") == len(specs)


def test_spec_error_exits_1_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nprobes:\n  p:\n    attach: {syscall: exceve}\n    do: []\n")
    for args in (("validate", str(bad)), (str(bad),), ("render", str(bad))):
        res = ebpf_run(*args)
        assert res.returncode == 1, args
        assert res.stderr.startswith(f"{bad}:4:23: error: unknown syscall 'exceve'")
        assert res.stderr.rstrip().endswith("1 error")
        assert "Traceback" not in res.stderr


def test_missing_file_is_a_spec_error(tmp_path):
    res = ebpf_run("validate", str(tmp_path / "nope.yaml"))
    assert res.returncode == 1
    assert "nope.yaml:1:1: error: cannot read spec: No such file or directory" in res.stderr


def test_usage_errors_exit_2():
    assert ebpf_run().returncode == 2
    assert ebpf_run("render").returncode == 2
    assert ebpf_run("run", "specs/hello.yaml", "--count", "0").returncode == 2
    assert ebpf_run("run", "specs/hello.yaml", "--duration", "soon").returncode == 2


def test_render_out_writes_c_and_python(tmp_path):
    res = ebpf_run("render", "specs/hello-buffer.yaml", "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    c = (tmp_path / "hello-buffer.c").read_text()
    py = (tmp_path / "hello_buffer.py").read_text()
    assert "struct data_t {" in c and "class data_t(er_ctypes.Structure):" in py
    # The written module imports on its own and checks its layout.
    check = subprocess.run([sys.executable, "-c", "import hello_buffer as m, ctypes; "
                            "print(ctypes.sizeof(m.data_t))"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.stdout.strip() == "36", check.stderr


def test_render_for_another_architecture():
    res = ebpf_run("render", "specs/hello-tail.yaml", "--arch", "aarch64")
    assert res.returncode == 0
    # hello-tail names syscalls; on arm64 they resolve to arm64's numbers.
    assert "case 107:  /* timer_create */" in res.stdout
    res = ebpf_run("render", "specs/hello-tail.yaml", "--arch", "x86_64")
    assert "case 222:  /* timer_create */" in res.stdout


def test_render_shows_layout_table():
    res = ebpf_run("render", "specs/hello-buffer.yaml")
    table = res.stdout.split("=== layout ===\n", 1)[1].splitlines()
    assert table[:6] == [
        "struct  field    type      offset  size",
        "data_t  pid      s32            0     4",
        "data_t  uid      s32            4     4",
        "data_t  command  char[16]       8    16",
        "data_t  message  char[12]      24    12",
        "data_t  (total)                      36",
    ]


def test_unprivileged_run_exits_3_saying_why(monkeypatch, capsys):
    """In-process, as a user without root or CAP_BPF/CAP_PERFMON (switching users would
    need the checkout to be readable by them, which a clone in a 0700 directory is not)."""
    import signal

    from runner.cli import main as cli
    from runner.kernel import bcc as kernel

    monkeypatch.setattr(kernel.os, "geteuid", lambda: 65534)
    monkeypatch.setattr(kernel, "_has_caps", lambda *caps: False)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert cli.main([str(ROOT / "specs" / "hello.yaml")]) == 3
    finally:  # the command ignores late signals as it ends; give pytest its own back
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    assert capsys.readouterr().err.strip() == (
        "ebpf-run: error: loading BPF programs needs root, or CAP_BPF and CAP_PERFMON: "
        "run ebpf-run with sudo")
