"""A spec path is looked at before anything reads it: a device, a FIFO or a huge file
would make the loader read forever or fill memory (`validate /dev/zero`)."""

from __future__ import annotations

import os
import stat

from runner.errors import Diagnostic, Location, SpecError

# Shipped specs are about 1 KiB and the schema caps every string at a few KiB; 1 MiB is
# far beyond any real spec and still cheap to parse.
MAX_SPEC_BYTES = 1 << 20

_KINDS = {stat.S_ISDIR: "a directory", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}


def check_readable(path: str) -> None:
    """Raise a located SpecError unless `path` is a regular file of at most MAX_SPEC_BYTES.
    A path that cannot be looked at is left to the loader, which says why."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS.items() if test(st.st_mode)),
                    "not a regular file")
        _refuse(path, f"cannot read spec: it is {kind}, not a regular file")
    if st.st_size > MAX_SPEC_BYTES:
        _refuse(path, f"cannot read spec: {st.st_size} bytes is more than a spec may have "
                      f"({MAX_SPEC_BYTES})")


def _refuse(path: str, message: str) -> None:
    raise SpecError([Diagnostic(Location(path, 1, 1), message)])
