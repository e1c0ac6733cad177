"""Cgroups against the kernel: the `cgroup` built-in, its `cgroup` and `container` decoders,
and `--cgroup PATH` filtering in the kernel, with exact counts.

The test makes cgroups of its own under the v2 root (found in /proc/self/mountinfo, as
ebpf-run finds it), moves each workload into one while it waits on stdin, then lets it make
its known number of getppid() calls. Two runs watch at once: one unfiltered (every cgroup
of ours by path, one removed before the dump by its id in hex), one with `--cgroup` on one
cgroup (its calls and those of the cgroup under it, nothing else on the machine)."""

from __future__ import annotations

import contextlib
import errno
import os
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest
from getppid import Generator
from harness import Run

from runner.support.cgroups import v2_mount

SPEC = """\
name: cgroup-calls
aggregations:
  calls:
    kind: count
    key: {cg: u64, ctr: u64}
    decode: {cg: cgroup, ctr: container}
probes:
  getppid:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - aggregate: {map: calls, key: {cg: cgroup, ctr: cgroup}}
"""

DOCKER_ID = "e4" * 32  # a directory named as docker's systemd driver names a container's
# The getppid() calls each workload makes, by its cgroup under ours.
CALLS = {"a": 11, f"docker-{DOCKER_ID}.scope": 7, f"docker-{DOCKER_ID}.scope/inner": 5,
         "gone": 4}


def _root() -> Path:
    mount = v2_mount()
    assert mount is not None, "no cgroup v2 mounted (tests/vm/run mounts one in the VM)"
    return Path(mount.point)


def _empty_and_remove(path: Path, root: Path) -> None:
    """Move what is left in the cgroup to the root's (a workload killed on a failure), then
    remove it; the kernel may take a moment to see an exited member gone (EBUSY)."""
    for _ in range(100):
        try:
            for pid in (path / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # exited meanwhile
                    (root / "cgroup.procs").write_text(pid)
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.05)
    path.rmdir()


@pytest.fixture
def cgroups() -> Iterator[Tuple[Path, Path]]:
    """(the v2 root, a cgroup of ours under it holding the CALLS ones), removed at the end
    whatever happened."""
    root = _root()
    top = root / f"ebpf-run-cgtest.{os.getpid()}"
    made: List[Path] = []
    try:
        for p in [top, *(top / name for name in CALLS)]:
            p.mkdir()
            made.append(p)
        yield root, top
    finally:
        for p in reversed(made):  # the deepest first
            _empty_and_remove(p, root)


def _work(cgroup: Path, n: int) -> None:
    """A process that waits on stdin, is moved into `cgroup`, then calls getppid() n times."""
    gen = Generator(n)
    try:
        (cgroup / "cgroup.procs").write_text(str(gen.pid))
        gen.go()
    finally:
        gen.end()


def _counts(run: Run) -> Dict[int, Tuple[str, str, int]]:
    """cgroup id -> (its decoded path, container, count) from a run's dump at exit."""
    out = {}
    for rec in run.json():
        if rec["type"] == "map" and rec["map"] == "calls":
            key = rec["key"]
            assert key["cg"] == key["ctr"] and key["cg"] not in out, rec
            out[key["cg"]] = (key["cg_name"], key["ctr_name"], rec["value"])
    return out


def test_counts_by_cgroup_and_the_kernel_side_filter(tmp_path, cgroups):
    root, top = cgroups
    spec = tmp_path / "cgroup-calls.yaml"
    spec.write_text(SPEC)
    ids = {name: os.stat(top / name).st_ino for name in CALLS}
    scope = f"docker-{DOCKER_ID}.scope"
    rel = f"/{top.name}/{scope}"
    with Run(str(spec), "--json") as every, Run(str(spec), "--json", "--cgroup", rel) as one:
        every.wait_ready()
        one.wait_ready()
        for name, n in CALLS.items():
            _work(top / name, n)
        _empty_and_remove(top / "gone", root)  # removed before the dump decodes its id
        assert every.stop() == 0 and one.stop() == 0, (every.err, one.err)
    path = {name: f"/{top.name}/{name}" for name in CALLS}
    expected = {
        ids["a"]: (path["a"], "", 11),
        ids[scope]: (path[scope], DOCKER_ID, 7),
        ids[f"{scope}/inner"]: (path[f"{scope}/inner"], DOCKER_ID, 5),
        ids["gone"]: (hex(ids["gone"]), hex(ids["gone"]), 4),
    }
    seen = _counts(every)
    assert {i: seen.get(i) for i in expected} == expected, every.out
    # The filtered run saw the cgroup and the one under it, and nothing else at all.
    assert _counts(one) == {i: expected[i] for i in (ids[scope], ids[f"{scope}/inner"])}, \
        one.out


def test_a_cgroup_that_is_not_there_is_a_usage_error_before_anything_is_attached(cgroups):
    top = cgroups[1]
    for arg, why in ((f"/{top.name}/nope", "no such cgroup under the cgroup v2 root"),
                     (str(top / "a" / "cgroup.procs"), "not a cgroup directory")):
        with Run("specs/hello.yaml", "--cgroup", arg) as run:
            assert run.finish() == 2
        assert len(run.err) == 1 and run.err[0].startswith(f"ebpf-run: error: --cgroup {arg}: "
                                                           f"{why}"), run.err
        assert run.out == []
