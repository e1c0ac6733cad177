"""The compile cache: hits skip the front end, misses when anything it depends on changes,
and a directory others could write to is never used."""

from __future__ import annotations

import os
import shutil

from runner import pipeline
from runner.support import cache

from .util import ROOT


def test_second_compile_comes_from_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("EBPF_RUN_NO_CACHE", raising=False)
    spec = tmp_path / "hello.yaml"
    shutil.copy(ROOT / "specs" / "hello-buffer.yaml", spec)
    first = pipeline.compile_spec(str(spec))
    assert len(list((tmp_path / "ebpf-run").glob("*.pickle"))) == 1
    calls = []
    monkeypatch.setattr(pipeline, "check", lambda *a: calls.append(a))
    again = pipeline.compile_spec(str(spec))
    assert calls == [] and again == first
    # Any change to the spec is a miss.
    spec.write_text(spec.read_text().replace("Hello World", "Hello There"))
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    changed = pipeline.compile_spec(str(spec))
    assert '"Hello There"' in changed.rendered.c


def test_key_depends_on_name_arch_and_bytes():
    base = cache.key("a.yaml", b"x", "x86_64")
    assert base != cache.key("b.yaml", b"x", "x86_64")
    assert base != cache.key("a.yaml", b"y", "x86_64")
    assert base != cache.key("a.yaml", b"x", "aarch64")


def test_directory_open_to_others_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("EBPF_RUN_NO_CACHE", raising=False)
    (tmp_path / "ebpf-run").mkdir(mode=0o777)
    os.chmod(tmp_path / "ebpf-run", 0o777)
    assert cache.directory() is None
    monkeypatch.setenv("EBPF_RUN_NO_CACHE", "1")
    os.chmod(tmp_path / "ebpf-run", 0o700)
    assert cache.directory() is None
