"""A plain wheel carries the templates, the schema and the syscall tables, and works
from any directory (importlib.resources, not paths relative to a checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from .util import ROOT

pytestmark = pytest.mark.slow  # pip builds a wheel: seconds


def test_wheel_carries_resources_and_runs_outside_checkout(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--disable-pip-version-check", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True, cwd=tmp_path)
    wheel = next(tmp_path.glob("ebpf_run-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("runner/schema.json", "runner/templates/program.c.j2",
                   "runner/templates/types.py.j2", "runner/data/syscalls-x86_64.txt",
                   "runner/data/syscalls-aarch64.txt"):
        assert needed in names, needed
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "ebpf-run = runner.__main__:entry" in zipfile.ZipFile(wheel).read(entry).decode()
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA")))
    assert b"Requires-Dist: bcc" not in meta  # BCC comes from the distribution, never PyPI
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    res = subprocess.run([sys.executable, "-m", "runner", "render",
                          str(ROOT / "specs" / "hello-buffer.yaml")],
                         cwd=elsewhere, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "data_t  (total)                      36" in res.stdout
    assert str(site) in subprocess.run(
        [sys.executable, "-c", "import runner; print(runner.__file__)"], cwd=elsewhere,
        env=env, capture_output=True, text=True).stdout
