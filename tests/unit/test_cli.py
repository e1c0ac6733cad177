"""The command line: exit codes and the commands that need no kernel."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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


FULL = "ebpf-run: error: cannot write to standard output: No space left on device\n"


def ebpf_run_to(stdout, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, stdout=stdout,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def test_output_to_a_full_device_is_a_one_line_error_exit_3():
    for args in (("validate", "specs/hello.yaml"), ("render", "specs/hello-tail.yaml")):
        with open("/dev/full", "w") as full:
            res = ebpf_run_to(full, *args)
        assert (res.returncode, res.stderr) == (3, FULL), args


def test_a_closed_stdout_ends_quietly():
    for args in (("validate", "specs/hello.yaml"), ("render", "specs/hello-tail.yaml")):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before the first write: EPIPE
        try:
            res = ebpf_run_to(write_end, *args)
        finally:
            os.close(write_end)
        assert (res.returncode, res.stderr) == (0, ""), args


def test_closed_standard_descriptors_are_no_traceback():
    """`ebpf-run ... >&-`: Python starts with sys.stdout None; ebpf-run reopens the closed
    descriptors on /dev/null (a BPF map must never become descriptor 1) and discards what
    goes to a closed stdout, as for a reader gone away."""
    for args in (("validate", "specs/hello.yaml"), ("render", "specs/hello-tail.yaml")):
        for closing in (">&-", "<&-"):
            res = subprocess.run(["/bin/sh", "-c", f'exec "$0" -m runner "$@" {closing}',
                                  sys.executable, *args], cwd=ROOT, capture_output=True,
                                 text=True, timeout=60)
            assert res.returncode == 0, (args, closing, res.stderr)
            assert "Traceback" not in res.stderr, res.stderr
    res = subprocess.run(["/bin/sh", "-c", 'exec "$0" -m runner validate specs/hello.yaml 2>&-',
                          sys.executable], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (res.returncode, res.stdout.splitlines()[0]) == (0, "specs/hello.yaml: ok (1 probe)")


def test_a_spec_that_is_no_regular_file_or_too_big_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB that cost nothing
    cases = {
        "/dev/zero": "it is a character device, not a regular file",
        str(tmp_path): "it is a directory, not a regular file",
        str(fifo): "it is a FIFO, not a regular file",
        str(huge): f"{4 << 30} bytes is more than a spec may have (1048576)",
    }
    for path, why in cases.items():
        for args in (("validate", path), ("render", path), ("run", path)):
            res = ebpf_run(*args)
            assert res.returncode == 1, args
            assert res.stderr == f"{path}:1:1: error: cannot read spec: {why}\n1 error\n", args


def test_render_out_to_a_path_that_cannot_be_a_directory_is_a_clear_error():
    res = ebpf_run("render", "specs/hello.yaml", "--out", "/dev/null/x")
    assert res.returncode == 3
    assert res.stderr == ("ebpf-run: error: cannot write /dev/null/x/hello.c: /dev/null: Not a "
                          "directory\n")


def test_a_duration_must_be_a_finite_positive_number():
    for text in ("nan", "NaN", "inf", "-inf", "1e400", "-1", "0"):
        res = ebpf_run("run", "specs/hello.yaml", f"--duration={text}")
        assert res.returncode == 2, text
        assert "argument --duration: must be" in res.stderr, text
        assert "Traceback" not in res.stderr


def test_every_command_has_one_handler():
    """A new command is a subparser and one line in HANDLERS."""
    import argparse

    from runner.cli import main as cli

    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(cli.HANDLERS)


def test_render_for_another_architecture_shows_every_real_error(tmp_path):
    spec = tmp_path / "tail.yaml"
    spec.write_text(
        "name: tail\n"
        "maps:\n"
        "  progs: {type: prog_array, max_entries: 4}\n"
        "probes:\n"
        "  p:\n"
        "    attach: {syscall: open}\n"  # x86_64 has open; aarch64 only openat
        "    do:\n"
        "      - tail_call: {map: progs, index: 0}\n"
        "programs:\n"
        "  q:\n"
        "    do:\n"
        "      - print: \"{nosuch}\"\n"
        "      - count: {map: nomap, key: pid}\n"
        "tail_calls:\n"
        "  progs:\n"
        "    entries:\n"
        "      \"0\": q\n")
    res = ebpf_run("render", str(spec), "--arch", "aarch64")
    errors = [ln for ln in res.stderr.splitlines() if ": error: " in ln]
    assert [e.split(": error: ")[1] for e in errors] == [
        "unknown syscall 'open' on aarch64",
        "'{nosuch}': unknown name 'nosuch'",
        "unknown map 'nomap'",
    ]


def test_set_takes_name_equals_value_of_a_declared_parameter():
    spec = "specs/tools/execsnoop.yaml"
    res = ebpf_run("render", spec, "--set", "pid=4242")
    assert res.returncode == 0, res.stderr
    assert "((u32)4242ULL)" in res.stdout
    for bad, says in (("pid", "expected NAME=VALUE"), ("nope=1", "has no parameter 'nope'"),
                      ("pid=-1", "does not fit in u32"), ("pid=x", "not an integer")):
        res = ebpf_run("render", spec, "--set", bad)
        assert res.returncode == 2, (bad, res.stderr)
        assert says in res.stderr and "Traceback" not in res.stderr, (bad, res.stderr)
    res = ebpf_run("render", spec, "--set", "pid=1", "--set", "pid=0x10")
    assert res.returncode == 0 and "((u32)16ULL)" in res.stdout  # the last one wins


@pytest.mark.slow  # seconds of waiting or subprocesses: the full tier
def test_set_takes_only_the_documented_integer_forms():
    """Decimal with an optional sign, or 0x hex; Python's int(text, 0) took all of these
    (`١٢٣` was 123)."""
    spec = "specs/tools/execsnoop.yaml"
    for bad in ("0b11", "0o17", "1_000", " 12", "12 ", "\u0661\u0662\u0663", "017", "0x",
                "+0x10", "1e3", "", "1" * 5000):
        res = ebpf_run("render", spec, "--set", f"pid={bad}")
        assert res.returncode == 2, (bad, res.stderr)
        line = res.stderr.splitlines()
        assert len(line) == 1 and "not an integer (decimal, e.g. 1234 or -1, or hex, e.g. " \
            "0x4d2)" in line[0] and len(line[0]) < 200, (bad, res.stderr)
    assert "pid='\\u0661\\u0662\\u0663'" in ebpf_run(
        "render", spec, "--set", "pid=\u0661\u0662\u0663").stderr  # shown as ASCII
    for good, value in (("0", 0), ("+12", 12), ("4294967295", 4294967295),
                        ("0XfF", 255), ("0x0", 0)):
        res = ebpf_run("render", spec, "--set", f"pid={good}")
        assert res.returncode == 0 and f"((u32){value}ULL)" in res.stdout, (good, res.stderr)


def test_render_out_replaces_planted_links_and_writes_through_none(tmp_path):
    """`render --out DIR` as root into a directory someone else can write: a link planted
    at an output name is replaced by the new file, its target left as it was."""
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "hello-buffer.c").symlink_to(target)
    os.link(target, out / "hello_buffer.py")  # a hard link: O_NOFOLLOW alone would not do
    res = ebpf_run("render", "specs/hello-buffer.yaml", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert target.read_text() == "root:x:0:0\n"
    assert not (out / "hello-buffer.c").is_symlink()
    assert "struct data_t {" in (out / "hello-buffer.c").read_text()
    assert "class data_t(" in (out / "hello_buffer.py").read_text()
    assert sorted(p.name for p in out.iterdir()) == ["hello-buffer.c", "hello_buffer.py"]


def test_render_out_that_cannot_be_written_exits_3(tmp_path):
    out = tmp_path / "out"
    (out / "hello-buffer.c").mkdir(parents=True)  # a directory where the file goes
    res = ebpf_run("render", "specs/hello-buffer.yaml", "--out", str(out))
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"ebpf-run: error: cannot write {out / 'hello-buffer.c'}: "), \
        res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["hello-buffer.c"]  # no temp file left


@pytest.mark.skipif(os.geteuid() != 0, reason="plants another user's link, as root would meet it")
def test_render_out_follows_no_link_another_user_planted_on_the_way(tmp_path):
    """`render --out /tmp/out/gen` as root, /tmp/out a link another user planted in the
    sticky /tmp: root wrote into the link's target (/etc, say), making its directories."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    target = tmp_path / "etc"
    target.mkdir()
    (shared / "out").symlink_to(target)
    os.lchown(shared / "out", 65534, 65534)
    res = ebpf_run("render", "specs/hello.yaml", "--out", str(shared / "out" / "gen"))
    assert res.returncode == 3 and "Traceback" not in res.stderr
    assert res.stderr == (f"ebpf-run: error: cannot write {shared}/out/gen/hello.c: "
                          f"{shared}/out is a symbolic link of uid 65534 in a directory others "
                          "can write, who could point it anywhere\n")
    assert list(target.iterdir()) == []
    writable = tmp_path / "open"
    writable.mkdir()
    writable.chmod(0o777)  # not sticky: anyone could rename what root makes in it
    res = ebpf_run("render", "specs/hello.yaml", "--out", str(writable / "gen"))
    assert res.returncode == 3 and "writable by group or others" in res.stderr, res.stderr
    assert list(writable.iterdir()) == []
    os.lchown(shared / "out", 0, 0)  # root's own link is honoured, and what is missing made
    res = ebpf_run("render", "specs/hello.yaml", "--out", str(shared / "out" / "a" / "b"))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (target / "a" / "b").iterdir()) == ["hello.c", "hello.py"]


@pytest.mark.skipif(os.geteuid() != 0, reason="plants another user's link, as root would meet it")
def test_a_folded_or_flamegraph_file_is_never_written_through_a_planted_link(tmp_path):
    """`--folded /tmp/x` as root, /tmp/x a link to /etc/something: root overwrote the
    target (the file was opened by name). Now the name is replaced, the target untouched,
    and a directory on the way that another user's link chose is refused."""
    from runner.support.cache_dir import Refused, write_output

    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "cpu.folded").symlink_to(target)
    write_output(str(shared / "cpu.folded"), b"a;b 1\n")
    assert target.read_text() == "root:x:0:0\n"
    assert (shared / "cpu.folded").read_text() == "a;b 1\n"
    (shared / "out").symlink_to(tmp_path)
    os.lchown(shared / "out", 65534, 65534)
    with pytest.raises(Refused, match="symbolic link of uid 65534"):
        write_output(str(shared / "out" / "cpu.svg"), b"<svg/>")
    assert not (tmp_path / "cpu.svg").exists()
