"""cgroup id -> its path under the cgroup v2 root (`/system.slice/cron.service`).

The id is what the `cgroup` built-in reads (bpf_get_current_cgroup_id()); the path comes
from a walk of the mounted hierarchy, kept until an id misses (runner/support/cgroups.py).
A cgroup removed before its id was decoded shows as the id in hex (0x1f3a): never dropped.
A directory's name is anyone's text: it is escaped for the terminal like every decoder's.
"""

from __future__ import annotations

from typing import Callable, List

from runner.kinds.decoders.base import Decoder
from runner.kinds.decoders.text import safe_text
from runner.support.cgroups import CgroupPaths, v2_mount

U64 = 0xFFFFFFFFFFFFFFFF
_shared: List[CgroupPaths] = []


def shared_paths() -> CgroupPaths:
    """One walk of the hierarchy per process, made at the first id decoded (validating or
    rendering a spec reads nothing)."""
    if not _shared:
        _shared.append(CgroupPaths(v2_mount()))
    return _shared[0]


def cgroup_path(paths: CgroupPaths, cgroup_id: int) -> str:
    """The path of the cgroup (escaped), or its id in hex when it is not there."""
    cgroup_id &= U64  # an s64 field holds the same id
    found = paths.path(cgroup_id)
    return safe_text(found) if found is not None else f"{cgroup_id:#x}"


def cgroup_decoder(paths: Callable[[], CgroupPaths] = shared_paths) -> Decoder:
    return Decoder(
        "cgroup", "int", lambda cgroup_id: cgroup_path(paths(), cgroup_id), keep_raw=True,
        doc="cgroup v2 id -> its path under the v2 root (/system.slice/cron.service); "
            "a cgroup no longer there: the id in hex")
