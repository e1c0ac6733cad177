"""A process's executable mappings, read from /proc/PID/maps while it lives.

Each mapping keeps the file it maps, found through /proc/PID/map_files/ (which reaches a
file deleted since, or one in another mount namespace, as root) and identified by device,
inode, size and mtime, so one file mapped by many processes is read once.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

PROC = Path("/proc")
MAX_MAPPINGS = 65536  # the kernel's default vm.max_map_count

FileKey = Tuple[int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    offset: int  # file offset of `start`
    path: str  # as the kernel shows it ("[vdso]", or a path, maybe " (deleted)")
    device: Tuple[int, int] = (0, 0)  # major, minor of the file's device
    inode: int = 0

    def file_offset(self, address: int) -> int:
        return address - self.start + self.offset


def parse_maps(text: str) -> List[Mapping]:
    """The executable, file-backed or special ([vdso]) mappings of a maps file."""
    out = []
    for line in text.splitlines()[:MAX_MAPPINGS]:
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1]:
            continue
        try:
            lo, hi = (int(x, 16) for x in parts[0].split("-", 1))
            offset = int(parts[2], 16)
            major, minor = (int(x, 16) for x in parts[3].split(":", 1))
            inode = int(parts[4])
        except ValueError:
            continue
        out.append(Mapping(lo, hi, offset, parts[5], (major, minor), inode))
    return out


def read_maps(pid: int, proc: Path = PROC) -> Optional[List[Mapping]]:
    """The mappings of `pid`, or None when it is gone (or was never there)."""
    try:
        return parse_maps((proc / str(pid) / "maps").read_text(errors="replace"))
    except OSError:
        return None


def open_mapped(pid: int, m: Mapping, proc: Path = PROC) -> Optional[Tuple[int, FileKey]]:
    """An fd on the file behind mapping `m` of `pid`, and its identity; None if it cannot
    be opened or is not a regular file."""
    if not m.path.startswith("/"):
        return None
    candidates = [proc / str(pid) / "map_files" / f"{m.start:x}-{m.end:x}",
                  proc / str(pid) / "root" / m.path.lstrip("/"),
                  # The process has exited meanwhile (its pid came from the kernel as it
                  # ran): the same path here, if it is the very file its maps named.
                  Path(m.path)]
    for i, path in enumerate(candidates):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        st = os.fstat(fd)
        same = i < 2 or (st.st_ino == m.inode and
                         (os.major(st.st_dev), os.minor(st.st_dev)) == m.device)
        if stat.S_ISREG(st.st_mode) and same:
            return fd, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        os.close(fd)
    return None
