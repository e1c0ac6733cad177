"""Reading a spec file: the first thing every command does with a path.

The file is opened first and looked at on the open descriptor (so what is checked is what
is read), then read up to a bound: a device, a FIFO or a huge file would make the loader
read forever or fill memory (`validate /dev/zero`). The bytes read here are the ones
checked, rendered and keyed in the cache: the path is not opened twice.
"""

from __future__ import annotations

import os
import stat

from runner.errors import Diagnostic, Location, SpecError

# Shipped specs are about 1 KiB and the schema caps every string at a few KiB; 1 MiB is
# far beyond any real spec and still cheap to parse.
MAX_SPEC_BYTES = 1 << 20

_KINDS = {stat.S_ISDIR: "a directory", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket"}


def read_spec(path: str) -> bytes:
    """The file's bytes, or a located SpecError saying why it cannot be a spec."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (OSError, ValueError) as e:
        _refuse(path, f"cannot read spec: {getattr(e, 'strerror', None) or e}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = next((name for test, name in _KINDS.items() if test(st.st_mode)),
                        "not a regular file")
            _refuse(path, f"cannot read spec: it is {kind}, not a regular file")
        if st.st_size > MAX_SPEC_BYTES:
            _refuse(path, f"cannot read spec: {st.st_size} bytes is more than a spec may have "
                          f"({MAX_SPEC_BYTES})")
        raw = _read_at_most(fd, MAX_SPEC_BYTES + 1)  # it may grow while we read
    except OSError as e:
        _refuse(path, f"cannot read spec: {e.strerror or e}")
    finally:
        os.close(fd)
    if len(raw) > MAX_SPEC_BYTES:
        _refuse(path, f"cannot read spec: it grew past what a spec may have ({MAX_SPEC_BYTES})")
    return raw


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _refuse(path: str, message: str) -> None:
    raise SpecError([Diagnostic(Location(path, 1, 1), message)])
