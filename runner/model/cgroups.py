"""A cgroup, as `--cgroup PATH` names it to the rendered program."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CgroupRef:
    """A cgroup v2: its id (its directory's inode number), its level (the root's is 0, as
    bpf_get_current_ancestor_cgroup_id counts) and its path under the v2 mount. As
    `Spec.cgroup_filter` (from `--cgroup PATH`), its path is fit for a comment."""

    id: int
    level: int
    path: str
