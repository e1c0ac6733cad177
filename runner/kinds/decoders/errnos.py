"""errno values -> ENOENT-style names; the sign does not matter (-2 and 2 are ENOENT)."""

from __future__ import annotations

import errno as _errno
from typing import Dict

from runner.kinds.decoders.base import Decoder

# Python's table is the host libc's, which for x86_64 and arm64 is the kernel's
# asm-generic one. Where two names share a number, it may pick the libc alias: use the
# kernel's spelling.
_KERNEL_SPELLING = {
    _errno.EAGAIN: "EAGAIN",
    _errno.EDEADLK: "EDEADLK",
    _errno.EOPNOTSUPP: "EOPNOTSUPP",
}

# include/linux/errno.h: never seen by user space, but a kprobe or a syscall's exit
# tracepoint on an interrupted call returns them (ERESTARTSYS is common).
_KERNEL_ONLY = {
    512: "ERESTARTSYS",
    513: "ERESTARTNOINTR",
    514: "ERESTARTNOHAND",
    515: "ENOIOCTLCMD",
    516: "ERESTART_RESTARTBLOCK",
    517: "EPROBE_DEFER",
    518: "EOPENSTALE",
    519: "ENOPARAM",
    521: "EBADHANDLE",
    522: "ENOTSYNC",
    523: "EBADCOOKIE",
    524: "ENOTSUPP",
    525: "ETOOSMALL",
    526: "ESERVERFAULT",
    527: "EBADTYPE",
    528: "EJUKEBOX",
    529: "EIOCBQUEUED",
    530: "ERECALLCONFLICT",
    531: "ENOGRACE",
}

NAMES: Dict[int, str] = {**_errno.errorcode, **_KERNEL_SPELLING, **_KERNEL_ONLY}


def errno_name(value: int) -> str:
    return NAMES.get(abs(value), str(value))


def syscall_return(value: int) -> str:
    """A syscall's return value: negative is an error (-2 -> ENOENT), the rest a count or
    an fd, shown as the number."""
    return errno_name(value) if value < 0 else str(value)


ERRNO = Decoder(
    "errno",
    "int",
    errno_name,
    keep_raw=True,
    doc="errno -> name, either sign (-2 -> ENOENT); unknown: the number",
)
SYSCALL_RET = Decoder(
    "syscall_ret",
    "int",
    syscall_return,
    keep_raw=True,
    doc="a return value: negative -> errno name (-13 -> EACCES), else the number",
)
