"""The compiled-program cache against the real kernel: a warm run loads what a cold run
compiled and prints exactly the same events; a hit runs no compile; a damaged entry is
refused with a warning, compiled again and stored again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from getppid import event_spec
from harness import Run

from runner.kernel import load
from runner.kernel.session import Kernel
from runner.pipeline import compile_spec

# Makes n getppid() calls for each line on stdin, and says when a batch is done.
BATCHES = textwrap.dedent("""\
    import os, sys
    for line in sys.stdin:
        [os.getppid() for _ in range({n})]
        print("done", flush=True)
""")


class Batches:
    """One process, so one pid (and one spec) across runs, making calls on demand."""

    def __init__(self, n: int):
        self.proc = subprocess.Popen([sys.executable, "-c", BATCHES.format(n=n)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pid = self.proc.pid

    def batch(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(b"go\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline() == b"done\n"

    def end(self) -> None:
        self.proc.kill()
        self.proc.wait()


def entries(cache_home) -> dict:
    d = cache_home / "ebpf-run"
    return {p.name: p.stat().st_mtime_ns for p in d.iterdir()} if d.exists() else {}


def object_entry(cache_home):
    found = [p for p in (cache_home / "ebpf-run").iterdir()
             if b"CompiledObject" in p.read_bytes()]
    assert len(found) == 1, found
    return found[0]


def events_of(spec: str, cache_home, gen: Batches, n: int) -> list:
    with Run(spec, "--json", env={"XDG_CACHE_HOME": str(cache_home)}) as run:
        run.wait_ready()
        gen.batch()
        run.wait_output(lambda out: sum('"type": "event"' in ln for ln in out) >= n)
        assert run.stop(signal.SIGINT) == 0, run.err
    assert not any("warning" in ln for ln in run.err), run.err
    return [r for r in run.json() if r["type"] == "event"]


@pytest.mark.parametrize("kind", ["ringbuf", "perf_event_array"])
def test_a_warm_run_prints_exactly_what_the_cold_run_printed(tmp_path, kind):
    gen = Batches(300)
    try:
        spec = tmp_path / "spec.yaml"
        spec.write_text(event_spec(kind, 16, gen.pid))
        cache_home = tmp_path / "cache"
        cold = events_of(str(spec), cache_home, gen, 300)
        stored = entries(cache_home)
        assert len(stored) == 2, stored  # the rendered spec and the compiled program
        object_entry(cache_home)
        warm = events_of(str(spec), cache_home, gen, 300)
    finally:
        gen.end()
    assert entries(cache_home) == stored  # a hit: nothing compiled, nothing stored again
    assert len(cold) == 300 and warm == cold


@pytest.fixture
def spec_path(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("EBPF_RUN_NO_CACHE", raising=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text(event_spec("perf_event_array", 8, os.getpid(), count_calls=True))
    return str(spec)


def load_and_attach(spec_path: str) -> str:
    """Load the spec (from the cache when it holds it), attach, trigger, read back."""
    compiled = compile_spec(spec_path)
    with Kernel(compiled.spec, compiled.rendered.c) as k:
        k.load()
        made_by = type(k.bpf).__name__
        attached = k.attach(compiled.spec.probes[0])
        os.getppid()
        k.detach_all()
        calls = next(m for m in compiled.spec.maps if m.name == "calls")
        items = list(k.maps.map_items(calls))
    assert attached.method is not None and len(items) == 1
    return made_by


def test_a_hit_compiles_nothing(spec_path):
    before = load.compile_count()
    assert load_and_attach(spec_path) == "QuietBPF"
    assert load.compile_count() == before + 1
    assert load_and_attach(spec_path) == "CachedBPF"
    assert load.compile_count() == before + 1


def test_a_damaged_entry_is_refused_then_rebuilt(spec_path, tmp_path, capfd):
    load_and_attach(spec_path)
    entry = object_entry(tmp_path / "cache")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0x01
    entry.write_bytes(bytes(data))
    before = load.compile_count()
    assert load_and_attach(spec_path) == "QuietBPF"
    assert load.compile_count() == before + 1
    assert "checksum does not match" in capfd.readouterr().err
    assert object_entry(tmp_path / "cache").read_bytes() != bytes(data)  # stored again
    assert load_and_attach(spec_path) == "CachedBPF"
    assert load.compile_count() == before + 1
