"""cgroup id -> the id of the container it belongs to, where its path shows one.

Container runtimes name a container's cgroup after its id, in one of two layouts:

    systemd driver   /system.slice/docker-<64 hex>.scope
                     /kubepods.slice/kubepods-burstable.slice/
                         kubepods-burstable-pod<uid, _ for ->.slice/cri-containerd-<hex>.scope
                     (crio-<hex>.scope for CRI-O, libpod-<hex>.scope for podman)
    cgroupfs driver  /docker/<64 hex>
                     /kubepods/burstable/pod<uid>/<64 hex>   (Guaranteed pods: /kubepods/pod<uid>/)

The innermost match wins: a process in a sub-cgroup of a container (systemd inside it,
`.../docker-<id>.scope/init.scope`) belongs to that container, and a pod's container in a
node that is itself a container (kind) to the pod's. The monitors that runtimes put beside
their containers (crio-conmon-<id>.scope, libpod-conmon-<id>.scope) are not containers.
A cgroup of no container decodes to "" (a host process); one no longer there to its id in
hex, as the `cgroup` decoder shows it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from runner.kinds.decoders.base import Decoder
from runner.kinds.decoders.cgroup import U64, shared_paths
from runner.support.cgroups import CgroupPaths

_HEX64 = "[0-9a-f]{64}"
_ID = "[0-9a-f]{12,64}"  # ids are 64 hex digits; some tools shorten them
_SCOPES = (
    (re.compile(f"docker-({_HEX64})\\.scope"), "docker"),
    (re.compile(f"cri-containerd-({_ID})\\.scope"), "containerd"),
    (re.compile(f"crio-({_ID})\\.scope"), "cri-o"),
    (re.compile(f"libpod-({_ID})\\.scope"), "podman"),
)
_BARE = re.compile(_HEX64)  # cgroupfs: the directory is the id
# A pod's cgroup: pod<uid> (cgroupfs), kubepods[-<qos>]-pod<uid with _ for ->.slice
# (systemd; kind's nodes prefix kubelet-). A static pod's uid is 32 hex digits, no dashes.
_POD = re.compile(r"(?:[a-z][a-z-]*-)?pod([0-9a-f][0-9a-f_-]{15,40})(?:\.slice)?")


@dataclass(frozen=True)
class Container:
    """runtime: docker, containerd, cri-o, podman, or "" where the layout does not say
    (kubelet's cgroupfs layout); pod: the Kubernetes pod's uid, "" outside a pod."""

    runtime: str
    id: str
    pod: str = ""


def container_of(path: str) -> Optional[Container]:
    """The container whose cgroup `path` is, or is under; None for a path of no container."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        parent = parts[i - 1] if i else ""
        for scope, runtime in _SCOPES:
            m = scope.fullmatch(parts[i])
            if m:
                return Container(runtime, m.group(1), _pod(parent))
        if i and _BARE.fullmatch(parts[i]):
            if parent == "docker":
                return Container("docker", parts[i])
            if _pod(parent):
                return Container("", parts[i], _pod(parent))
    return None


def _pod(name: str) -> str:
    m = _POD.fullmatch(name)
    return m.group(1).replace("_", "-") if m else ""


def container_id(paths: CgroupPaths, cgroup_id: int) -> str:
    cgroup_id &= U64
    path = paths.path(cgroup_id)
    if path is None:
        return f"{cgroup_id:#x}"
    found = container_of(path)
    return found.id if found is not None else ""


def container_decoder(paths: Callable[[], CgroupPaths] = shared_paths) -> Decoder:
    return Decoder(
        "container", "int", lambda cgroup_id: container_id(paths(), cgroup_id),
        keep_raw=True,
        doc="cgroup v2 id -> the container id its path shows (docker, containerd, CRI-O, "
            "podman, Kubernetes); \"\" for none; a cgroup no longer there: the id in hex")

