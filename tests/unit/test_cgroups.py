"""Cgroups and containers: the v2 mount from mountinfo, `--cgroup PATH` resolved to an id and
a level, the id -> path walk and its cache, the `cgroup` and `container` decoders (hostile
directory names, removed cgroups), the container id of each runtime's layout, and the
filter's C. A temporary directory stands for the v2 mount: a cgroup's id is its directory's
inode number there as in cgroupfs. tests/kernel/test_cgroups.py runs it against the kernel."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List

import pytest

from runner.check.params import apply
from runner.cli import main as cli
from runner.codegen.render import render_c
from runner.kinds.builtins import BUILTINS
from runner.kinds.decoders import Decoders
from runner.kinds.decoders.cgroup import cgroup_decoder, cgroup_path
from runner.kinds.decoders.container import Container, container_decoder, container_of
from runner.model.cgroups import CgroupRef
from runner.model.spec import Spec
from runner.support import cache, cgroups
from runner.support.cgroups import (
    CgroupError,
    CgroupPaths,
    V2Mount,
    filter_param,
    parse_filter_param,
    parse_mountinfo,
    resolve,
    walk,
)
from runner.support.frozen_json import Codec

from .util import spec_from_text

HYBRID = """\
24 29 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,relatime shared:10 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
"""


def test_the_v2_mount_comes_from_mountinfo():
    assert parse_mountinfo(HYBRID) == V2Mount("/sys/fs/cgroup/unified", "/")
    unified = "35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n"
    assert parse_mountinfo(unified) == V2Mount("/sys/fs/cgroup", "/")
    assert parse_mountinfo(HYBRID.replace("cgroup2 cgroup2", "tmpfs tmpfs")) is None
    assert parse_mountinfo("") is None


def test_a_mount_point_with_spaces_and_a_subtree_mount():
    # The kernel writes a space as \040; optional fields (shared:N master:N) vary in number.
    text = ("40 24 0:30 /kubepods /mnt/sub\\040tree rw shared:9 master:3 - cgroup2 none rw\n"
            "41 24 0:30 / /mnt/cg\\040v2 rw - cgroup2 none rw\n")
    assert parse_mountinfo(text) == V2Mount("/mnt/cg v2", "/")  # the whole hierarchy first
    sub = parse_mountinfo(text.splitlines()[0])
    assert sub == V2Mount("/mnt/sub tree", "/kubepods") and sub.root_level == 1


def _mount(tmp_path: Path) -> V2Mount:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "cgroup.procs").write_text("")
    (tmp_path / "c").mkdir()
    return V2Mount(str(tmp_path))


def _ino(p: Path) -> int:
    return os.stat(p).st_ino


def test_resolve_gives_the_id_and_level_of_a_path_either_way(tmp_path):
    m = _mount(tmp_path)
    b = CgroupRef(_ino(tmp_path / "a" / "b"), 2, "/a/b")
    assert resolve("/a/b", m) == b  # as the decoder shows it
    assert resolve("a/b/", m) == b
    assert resolve(str(tmp_path / "a" / "b"), m) == b  # its directory under the mount
    assert resolve("/", m) == CgroupRef(_ino(tmp_path), 0, "/")
    assert resolve("/a/../c", m) == CgroupRef(_ino(tmp_path / "c"), 1, "/c")
    # A mount of a subtree: levels count from the hierarchy's root.
    assert resolve("/a", V2Mount(str(tmp_path), "/kubepods/pod1")).level == 3


@pytest.mark.parametrize("path, message", [
    ("/nope", "--cgroup /nope: no such cgroup under the cgroup v2 root {m} (No such file or "
              "directory: {m}/nope)"),
    ("../..", "--cgroup ../..: not under the cgroup v2 root {m}"),
    ("/a/../../..", "--cgroup /a/../../..: not under the cgroup v2 root {m}"),
    ("/a/cgroup.procs", "--cgroup /a/cgroup.procs: not a cgroup directory of the cgroup v2 "
                        "hierarchy at {m}"),
    ("/etc", "--cgroup /etc: not under the cgroup v2 root {m} (a cgroup v1 hierarchy?): give "
             "a path under it, or one relative to it (/system.slice)"),
    ("", "--cgroup: give a cgroup's path (e.g. /system.slice)"),
    ("/x\x1b[2J", "--cgroup '/x\\x1b[2J': no such cgroup under the cgroup v2 root {m} (No "
                  "such file or directory: '{m}/x\\x1b[2J')"),
])
def test_resolve_refuses_what_is_no_cgroup_there(tmp_path, path, message):
    m = _mount(tmp_path)
    with pytest.raises(CgroupError) as info:
        resolve(path, m)
    assert str(info.value) == message.format(m=tmp_path)


def test_the_filter_travels_as_a_set_pair_and_keys_the_cache():
    ref = CgroupRef(4242, 2, "/a:b/c")
    pair = filter_param(ref)
    assert pair == ("--cgroup", "4242:2:/a:b/c") and parse_filter_param(pair[1]) == ref
    for bad in ("4242:2", "x:2:/a", "4242:-1:/a", "٤:2:/a"):
        with pytest.raises(ValueError):
            parse_filter_param(bad)
    key = cache.key("s.yaml", b"name: s", "x86_64", (("pid", "1"),))
    assert cache.key("s.yaml", b"name: s", "x86_64", (("pid", "1"), pair)) != key
    other = filter_param(CgroupRef(4243, 2, "/a:b/c"))
    assert cache.key("s.yaml", b"name: s", "x86_64", (("pid", "1"), other)) != \
        cache.key("s.yaml", b"name: s", "x86_64", (("pid", "1"), pair))


SPEC = """\
name: cg
maps:
  jump: {type: prog_array, max_entries: 4}
programs:
  more:
    do:
      - aggregate: {map: calls, key: {cg: cgroup}}
tail_calls:
  jump: {entries: {0: more}}
aggregations:
  calls: {kind: count, key: {cg: u64}, decode: {cg: cgroup}}
probes:
  enter:
    attach: {tracepoint: "syscalls:sys_enter_getppid"}
    do:
      - aggregate: {map: calls, key: {cg: cgroup}}
      - tail_call: {map: jump, index: 0}
  exit:
    attach: {tracepoint: "syscalls:sys_exit_getppid"}
    do:
      - aggregate: {map: calls, key: {cg: cgroup}}
"""


def test_the_filter_is_a_check_at_the_top_of_every_probe_program():
    spec = spec_from_text(SPEC)
    plain = render_c(spec)
    assert "er_cgroup" not in plain and "bpf_get_current_cgroup_id()" in plain
    c = render_c(apply(spec, {"--cgroup": "4242:3:/a/b*/\nx"}))
    assert ("/* --cgroup /a/b?/?x: every probe first drops the tasks outside this cgroup v2\n"
            " * (its id: the directory's inode number; its level: how deep it is, the root "
            "being 0) */\n#define er_cgroup_id ((u64)4242ULL)\n#define er_cgroup_level 3\n"
            ) in c
    check = ("    if (bpf_get_current_ancestor_cgroup_id(er_cgroup_level) != er_cgroup_id)\n"
             "        return 0;\n")
    functions = c.split("\nint ")[1:]
    entries = [f for f in functions if f.startswith("er_enter") or f.startswith("er_exit")]
    assert len(entries) == 2 and all(check in f for f in entries)
    # A tail-call target is reached only from a probe's program, which checked already.
    targets = [f for f in functions if f not in entries]
    assert targets and not any(check in f for f in targets)
    # Nothing else changes: the filter is those lines and the check, once per probe.
    assert c.count("er_cgroup_id") == 3
    # The compile cache stores the model with its filter and reads it back.
    filtered = apply(spec, {"--cgroup": "4242:3:/a"})
    codec = Codec(cache.model_classes())
    assert codec.loads(codec.dumps(filtered), Spec).cgroup_filter == CgroupRef(4242, 3, "/a")


def test_cgroup_is_a_built_in_of_every_context():
    b = BUILTINS["cgroup"]
    assert (b.type, b.c, b.contexts) == ("u64", "bpf_get_current_cgroup_id()", frozenset())


# -- the walk and the decoders


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_walk_finds_every_cgroup_and_its_cache_rewalks_on_a_miss(tmp_path):
    m = _mount(tmp_path)
    found, newest = walk(m.point)
    assert found == {_ino(tmp_path): "/", _ino(tmp_path / "a"): "/a",
                     _ino(tmp_path / "a" / "b"): "/a/b", _ino(tmp_path / "c"): "/c"}
    assert newest == max(found)
    clock = Clock()
    paths = CgroupPaths(m, clock=clock)
    assert paths.path(_ino(tmp_path / "c")) == "/c" and paths.walks == 1
    assert paths.path(_ino(tmp_path / "a")) == "/a" and paths.walks == 1  # from the cache
    # A miss of an id no newer than the walk's: not re-walked within REWALK_S.
    assert paths.path(1) is None and paths.walks == 1
    clock.now += cgroups.REWALK_S
    assert paths.path(1) is None and paths.walks == 2
    # A cgroup made since: its id is newer than any seen, so it is walked for at once.
    (tmp_path / "d").mkdir()
    assert paths.path(_ino(tmp_path / "d")) == "/d" and paths.walks == 3


def test_a_removed_cgroup_newer_than_any_walk_found_is_not_walked_for_at_each_record(tmp_path):
    """A cgroup made and removed between two walks has an id above every one a walk finds:
    each of its records walked the whole tree again (a review: 1001 walks for 1000
    records). Its first miss walks; later ones wait for REWALK_S like any miss."""
    m = _mount(tmp_path)
    clock = Clock()
    paths = CgroupPaths(m, clock=clock)
    assert paths.path(_ino(tmp_path / "a")) == "/a" and paths.walks == 1
    gone = tmp_path / "gone"
    gone.mkdir()
    cid = _ino(gone)
    gone.rmdir()
    for _ in range(1000):
        assert paths.path(cid) is None
    assert paths.walks == 2
    clock.now += cgroups.REWALK_S
    assert paths.path(cid) is None and paths.walks == 3


def test_the_walk_is_bounded(tmp_path):
    for i in range(20):
        (tmp_path / f"g{i}").mkdir()
    found, _ = walk(str(tmp_path), limit=5)
    assert len(found) == 5
    assert walk(str(tmp_path / "gone")) == ({}, -1)


def test_a_removed_cgroup_decodes_to_its_id_in_hex(tmp_path):
    m = _mount(tmp_path)
    paths = CgroupPaths(m)
    gone = tmp_path / "c"
    cid = _ino(gone)
    gone.rmdir()
    cg, ctr = cgroup_decoder(lambda: paths), container_decoder(lambda: paths)
    assert cg.text(cid) == hex(cid) and ctr.text(cid) == hex(cid)
    assert cg.json_fields("cg", cid) == {"cg": cid, "cg_name": hex(cid)}
    assert cg.text(-1) == "0xffffffffffffffff"  # an s64 field: the same 64 bits
    assert cg.text(_ino(tmp_path / "a" / "b")) == "/a/b"
    assert CgroupPaths(None).path(1) is None  # no v2 mounted: ids only


def test_hostile_directory_names_are_escaped(tmp_path):
    names = ["new\nline", "esc\x1b[31m", "bidi\u202eevil", os.fsdecode(b"bad\xff")]
    for n in names:
        (tmp_path / n).mkdir()
    paths = CgroupPaths(V2Mount(str(tmp_path)))
    shown = sorted(cgroup_path(paths, _ino(tmp_path / n)) for n in names)
    assert shown == ["/bad\\xff", "/bidi\\u202eevil", "/esc\\x1b[31m", "/new\\x0aline"]
    assert all(s.isprintable() for s in shown)


def test_the_decoders_are_registered():
    x86 = Decoders.for_arch("x86_64")
    assert x86.get("cgroup").keep_raw and x86.get("container").keep_raw
    spec = spec_from_text(SPEC.replace("decode: {cg: cgroup}", "decode: {cg: container}"))
    assert spec.aggregations[0].keys[0].decode == "container"


# -- container ids, one per layout

D = "4f2a" * 16  # 64 hex digits
C = "9c1e" * 16
POD = "0b6c5d2e-8f1a-4c3b-9d7e-5a4b3c2d1e0f"


@pytest.mark.parametrize("path, expected", [
    # systemd driver
    (f"/system.slice/docker-{D}.scope", Container("docker", D)),
    (f"/machine.slice/libpod-{D}.scope", Container("podman", D)),
    (f"/machine.slice/libpod-{D}.scope/container", Container("podman", D)),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}"
     f".slice/cri-containerd-{C}.scope", Container("containerd", C, POD)),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{POD.replace('-', '_')}"
     f".slice/crio-{C}.scope", Container("cri-o", C, POD)),
    (f"/kubepods.slice/kubepods-pod{POD.replace('-', '_')}.slice/cri-containerd-{C}.scope",
     Container("containerd", C, POD)),  # a Guaranteed pod: no QoS slice
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}"
     f".slice/docker-{C}.scope", Container("docker", C, POD)),  # dockershim
    # cgroupfs driver
    (f"/docker/{D}", Container("docker", D)),
    (f"/kubepods/burstable/pod{POD}/{C}", Container("", C, POD)),
    (f"/kubepods/besteffort/pod{POD}/{C}", Container("", C, POD)),
    (f"/kubepods/pod{POD}/{C}", Container("", C, POD)),
    (f"/kubepods/pod{'ab' * 16}/{C}", Container("", C, "ab" * 16)),  # a static pod's uid
    # the innermost container: systemd inside a container, kind's nodes
    (f"/system.slice/docker-{D}.scope/init.scope", Container("docker", D)),
    (f"/docker/{D}/system.slice/cron.service", Container("docker", D)),
    (f"/system.slice/docker-{D}.scope/kubelet.slice/kubelet-kubepods.slice/"
     f"kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod{POD.replace('-', '_')}"
     f".slice/cri-containerd-{C}.scope", Container("containerd", C, POD)),
])
def test_container_ids_of_each_layout(path, expected):
    assert container_of(path) == expected


@pytest.mark.parametrize("path", [
    "/", "/user.slice/user-1000.slice/session-2.scope", "/system.slice/docker.service",
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{POD.replace('-', '_')}"
    ".slice",  # a pod's own cgroup (its pause process' parent): no container
    f"/machine.slice/crio-conmon-{C}.scope",  # the runtimes' monitors are not containers
    f"/machine.slice/libpod-conmon-{C}.scope",
    f"/system.slice/docker-{D[:-1]}.scope",  # not 64 digits
    f"/system.slice/docker-{D.upper()}.scope",
    f"/{D}",  # a bare id under no runtime's directory
    f"/other/{D}",
    f"/system.slice/docker-{D}.scope\n",
    f"/docker/{D}x",
])
def test_paths_of_no_container(path):
    assert container_of(path) is None


def test_the_container_decoder_reads_the_path_of_the_id(tmp_path):
    scope = tmp_path / "system.slice" / f"docker-{D}.scope"
    (scope / "init.scope").mkdir(parents=True)
    paths = CgroupPaths(V2Mount(str(tmp_path)))
    ctr = container_decoder(lambda: paths)
    assert ctr.text(_ino(scope / "init.scope")) == D
    assert ctr.json_fields("c", _ino(scope)) == {"c": _ino(scope), "c_name": D}
    assert ctr.text(_ino(tmp_path / "system.slice")) == ""


# -- the command line


def _fake_mountinfo(tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "cg"
    (root / "svc" / "inner").mkdir(parents=True)
    info = tmp_path / "mountinfo"
    info.write_text(f"31 30 0:27 / {root} rw - cgroup2 cgroup2 rw\n")
    monkeypatch.setattr(cgroups, "MOUNTINFO", str(info))
    monkeypatch.setenv("EBPF_RUN_NO_CACHE", "1")
    return root


def _render(tmp_path: Path, capsys, *args: str) -> List[str]:
    spec = tmp_path / "cg.yaml"
    spec.write_text(SPEC)
    rc = cli.main(["render", str(spec), *args])
    out, err = capsys.readouterr()
    return [str(rc), out, err]


def test_cli_cgroup_renders_the_filter(tmp_path, monkeypatch, capsys):
    root = _fake_mountinfo(tmp_path, monkeypatch)
    rc, out, err = _render(tmp_path, capsys, "--cgroup", "/svc/inner")
    assert rc == "0", err
    assert f"#define er_cgroup_id ((u64){_ino(root / 'svc' / 'inner')}ULL)\n" \
           "#define er_cgroup_level 2\n" in out
    rc, out, err = _render(tmp_path, capsys, "--cgroup", str(root / "svc"), "--set", "x=1")
    assert rc == "2" and "the spec has no parameter 'x' (parameters: none)" in err


def test_the_filter_pair_cannot_be_set_by_hand(tmp_path, capsys):
    spec = tmp_path / "cg.yaml"
    spec.write_text(SPEC)
    with pytest.raises(SystemExit) as info:
        cli.main(["render", str(spec), "--set=--cgroup=1:0:/"])
    assert info.value.code == 2
    assert "argument --set: expected NAME=VALUE, not '--cgroup=1:0:/'" in capsys.readouterr().err


@pytest.mark.parametrize("arg, message", [
    ("/nope", "ebpf-run: error: --cgroup /nope: no such cgroup under the cgroup v2 root "
              "{root} (No such file or directory: {root}/nope)\n"),
    ("/etc", "ebpf-run: error: --cgroup /etc: not under the cgroup v2 root {root} (a cgroup "
             "v1 hierarchy?): give a path under it, or one relative to it (/system.slice)\n"),
])
def test_cli_cgroup_that_names_no_cgroup_is_a_usage_error(tmp_path, monkeypatch, capsys, arg,
                                                          message):
    root = _fake_mountinfo(tmp_path, monkeypatch)
    rc, out, err = _render(tmp_path, capsys, "--cgroup", arg)
    assert (rc, out, err) == ("2", "", message.format(root=root))


def test_cli_cgroup_without_a_v2_mount(tmp_path, monkeypatch, capsys):
    info = tmp_path / "mountinfo"
    info.write_text(HYBRID.replace("cgroup2 cgroup2", "tmpfs tmpfs"))
    monkeypatch.setattr(cgroups, "MOUNTINFO", str(info))
    rc, _, err = _render(tmp_path, capsys, "--cgroup", "/")
    assert (rc, err) == ("2", "ebpf-run: error: no cgroup v2 is mounted (none in "
                              "/proc/self/mountinfo): mount one with `mount -t cgroup2 none "
                              "/sys/fs/cgroup`\n")
