"""The cgroup v2 hierarchy as ebpf-run sees it: where it is mounted, which directory an id
names, and which id and level a path names.

The kernel's cgroup id (bpf_get_current_cgroup_id(), the `cgroup` built-in) is the inode
number of the cgroup's directory in the v2 file system (kernfs gives each node a 64-bit id
and shows it as the inode number). Ids only grow: a removed cgroup's id is never given
again (kernfs allocates them cyclically, with a generation in the high bits).

    mount = v2_mount()                       # from /proc/self/mountinfo, never a fixed path
    ref = resolve("/system.slice", mount)    # CgroupRef(id=..., level=1, path="/system.slice")
    CgroupPaths(mount).path(ref.id)          # "/system.slice"; None for an id no longer there

Where cgroup v2 is mounted differs between machines (/sys/fs/cgroup on a unified host,
/sys/fs/cgroup/unified on a hybrid one, a subtree in a container): it is read from
/proc/self/mountinfo, the first `cgroup2` mount of the whole hierarchy (its root "/").
"""

from __future__ import annotations

import os
import re
import stat
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from runner.model.cgroups import CgroupRef

MOUNTINFO = "/proc/self/mountinfo"

# A walk of the hierarchy visits at most this many cgroups (a host with Kubernetes has a
# few thousand); a larger one is walked this far and the rest show as ids.
MAX_CGROUPS = 100_000
# A miss re-walks the tree at most this often, unless the id is newer than any the last
# walk saw (a cgroup made since): a stream of records from a removed cgroup must not
# turn into a stream of walks.
REWALK_S = 1.0


class CgroupError(ValueError):
    """A path that names no cgroup v2 directory, or no cgroup v2 mount: the text says which,
    for the command line to print."""


@dataclass(frozen=True)
class V2Mount:
    """A cgroup2 mount: where it is (`point`) and which cgroup it shows there (`root`,
    "/" for the whole hierarchy; a container may see a subtree)."""

    point: str
    root: str = "/"

    @property
    def root_level(self) -> int:
        """The level of the cgroup at `point`: 0 for the hierarchy's root."""
        return len([p for p in self.root.split("/") if p])


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mountinfo path field: the kernel writes space, tab, newline and backslash as \\ooo."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> Optional[V2Mount]:
    """The cgroup2 mount to use from mountinfo's text: the first of the whole hierarchy,
    else the first (a subtree); None when there is none."""
    found: List[V2Mount] = []
    for line in text.splitlines():
        head, sep, tail = line.partition(" - ")
        fields, fs = head.split(" "), tail.split(" ")
        if not sep or len(fields) < 5 or not fs or fs[0] != "cgroup2":
            continue
        found.append(V2Mount(_unescape(fields[4]), _unescape(fields[3])))
    whole = [m for m in found if m.root == "/"]
    return (whole + found)[0] if found else None


def v2_mount(mountinfo: Optional[str] = None) -> Optional[V2Mount]:
    """This process's cgroup v2 mount; None when none is mounted (or /proc is not)."""
    try:
        with open(mountinfo or MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            return parse_mountinfo(f.read())
    except OSError:
        return None


def require_v2_mount(mountinfo: Optional[str] = None) -> V2Mount:
    mount = v2_mount(mountinfo)
    if mount is None:
        raise CgroupError("no cgroup v2 is mounted (none in /proc/self/mountinfo): mount one "
                          "with `mount -t cgroup2 none /sys/fs/cgroup`")
    return mount


def resolve(path: str, mount: V2Mount) -> CgroupRef:
    """The cgroup that `path` names: a path under the v2 root as the `cgroup` decoder shows
    it (`/system.slice/cron.service`), or the directory's own path under the mount point.
    Raises CgroupError when it names nothing there, or something outside the hierarchy."""
    shown = _shown(path)
    point = os.path.realpath(mount.point)
    if not path:
        raise CgroupError("--cgroup: give a cgroup's path (e.g. /system.slice)")
    inside = path == mount.point or path.startswith(mount.point.rstrip("/") + "/")
    fs_path = path if inside else os.path.join(mount.point, path.lstrip("/"))
    real = os.path.realpath(fs_path)
    if os.path.commonpath([real, point]) != point:
        raise CgroupError(f"--cgroup {shown}: not under the cgroup v2 root {mount.point}")
    try:
        st, root = os.stat(real), os.stat(point)
    except OSError as e:
        if not inside and os.path.isabs(path) and os.path.exists(path):
            raise CgroupError(f"--cgroup {shown}: not under the cgroup v2 root {mount.point} "
                              "(a cgroup v1 hierarchy?): give a path under it, or one "
                              "relative to it (/system.slice)") from None
        raise CgroupError(f"--cgroup {shown}: no such cgroup under the cgroup v2 root "
                          f"{mount.point} ({e.strerror}: {_shown(fs_path)})") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_dev != root.st_dev:
        raise CgroupError(f"--cgroup {shown}: not a cgroup directory of the cgroup v2 "
                          f"hierarchy at {mount.point}")
    rel = os.path.relpath(real, point)
    parts = [] if rel == "." else rel.split(os.sep)
    return CgroupRef(st.st_ino, mount.root_level + len(parts), "/" + "/".join(parts))


def _shown(text: str) -> str:
    """A path in a message: as typed, or escaped (quoted) where it holds what a terminal
    would act on."""
    return text if text.isprintable() else ascii(text)


# `--cgroup PATH` reaches the render step as one more `--set` pair, under a name no spec
# parameter can have: the compile cache keys on it as on the others (support/cache.py).
FILTER_PARAM = "--cgroup"


def filter_param(ref: CgroupRef) -> Tuple[str, str]:
    """The `--set`-like pair that carries a resolved `--cgroup`: "ID:LEVEL:PATH"."""
    return FILTER_PARAM, f"{ref.id}:{ref.level}:{ref.path}"


def parse_filter_param(text: str) -> CgroupRef:
    """The cgroup a filter_param pair carries; ValueError for any other text."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts[:2]):
        raise ValueError(f"{FILTER_PARAM}: not ID:LEVEL:PATH: {text!a}")
    return CgroupRef(int(parts[0]), int(parts[1]), parts[2])


class CgroupPaths:
    """Cgroup id -> path under the mount, from a walk of the mounted hierarchy kept until
    a miss: a new cgroup (an id above any seen) re-walks at once, another miss at most
    once a REWALK_S. Paths are text: bytes that are not UTF-8 as \\xNN escapes."""

    def __init__(self, mount: Optional[V2Mount], limit: int = MAX_CGROUPS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.mount = mount
        self.limit = limit
        self.clock = clock
        self.paths: Dict[int, str] = {}
        self.newest = -1
        self.walked_at: Optional[float] = None
        self.walks = 0

    def path(self, cgroup_id: int) -> Optional[str]:
        """The path of the cgroup with this id; None when it is not (or no longer) there."""
        found = self.paths.get(cgroup_id)
        if found is not None or self.mount is None:
            return found
        now = self.clock()
        if self.walked_at is None or cgroup_id > self.newest or now - self.walked_at >= REWALK_S:
            self.paths, newest = walk(self.mount.point, self.limit)
            # An id the walk did not find (removed already, or past the limit) counts as
            # seen: its next records wait for the once-a-REWALK_S walk, not a walk each.
            self.newest = max(newest, cgroup_id)
            self.walked_at = now
            self.walks += 1
        return self.paths.get(cgroup_id)


def walk(point: str, limit: int = MAX_CGROUPS) -> Tuple[Dict[int, str], int]:
    """{id: path} of the cgroups under `point` (at most `limit`), and the largest id seen.
    A directory removed during the walk is left out; links are not followed and the walk
    stays on the mount's own device (no other file system is a cgroup)."""
    root = os.fsencode(point)
    try:
        top = os.stat(root)
    except OSError:
        return {}, -1
    paths: Dict[int, str] = {top.st_ino: "/"}
    pending: List[Tuple[bytes, bytes]] = [(root, b"")]
    while pending and len(paths) < limit:
        directory, rel = pending.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    if not entry.is_dir(follow_symlinks=False):
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:  # removed meanwhile
                        continue
                    if st.st_dev != top.st_dev:
                        continue
                    sub = rel + b"/" + entry.name
                    paths[st.st_ino] = sub.decode("utf-8", "backslashreplace")
                    pending.append((entry.path, sub))
                    if len(paths) >= limit:
                        break
        except OSError:  # removed, or not readable: what is under it is not known
            continue
    return paths, max(paths)
