"""open(2) flags -> O_RDONLY|O_CLOEXEC, with the architecture's own bit values."""

from __future__ import annotations

from typing import Dict, List, Tuple

from runner.kinds.decoders.base import Decoder

# include/uapi/asm-generic/fcntl.h (octal, as the header writes them).
_GENERIC: Dict[str, int] = {
    "O_CREAT": 0o100,
    "O_EXCL": 0o200,
    "O_NOCTTY": 0o400,
    "O_TRUNC": 0o1000,
    "O_APPEND": 0o2000,
    "O_NONBLOCK": 0o4000,
    "O_DSYNC": 0o10000,
    "O_ASYNC": 0o20000,
    "O_DIRECT": 0o40000,
    "O_LARGEFILE": 0o100000,
    "O_DIRECTORY": 0o200000,
    "O_NOFOLLOW": 0o400000,
    "O_NOATIME": 0o1000000,
    "O_CLOEXEC": 0o2000000,
    "__O_SYNC": 0o4000000,
    "O_PATH": 0o10000000,
    "__O_TMPFILE": 0o20000000,
}
# arch/arm64/include/uapi/asm/fcntl.h swaps four of them.
_ARM64 = {
    **_GENERIC,
    "O_DIRECTORY": 0o40000,
    "O_NOFOLLOW": 0o100000,
    "O_DIRECT": 0o200000,
    "O_LARGEFILE": 0o400000,
}
FLAGS = {"x86_64": _GENERIC, "aarch64": _ARM64}

_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
O_ACCMODE = 3


def _ordered(arch: str) -> List[Tuple[str, int]]:
    table = dict(FLAGS[arch])
    # Two-bit flags first, so O_SYNC is not shown as O_DSYNC|__O_SYNC.
    pairs = [
        ("O_TMPFILE", table["__O_TMPFILE"] | table["O_DIRECTORY"]),
        ("O_SYNC", table["__O_SYNC"] | table["O_DSYNC"]),
    ]
    return pairs + sorted(table.items(), key=lambda kv: kv[1])


def open_flags_decoder(arch: str) -> Decoder:
    if arch not in FLAGS:
        raise KeyError(arch)
    ordered = _ordered(arch)

    def convert(flags: int) -> str:
        if flags < 0:
            return str(flags)
        parts = [_ACCESS.get(flags & O_ACCMODE, hex(flags & O_ACCMODE))]
        rest = flags & ~O_ACCMODE
        for name, bits in ordered:
            if (rest & bits) == bits:
                parts.append(name)
                rest &= ~bits
        if rest:
            parts.append(hex(rest))  # bits no header of ours names
        return "|".join(parts)

    return Decoder(
        "open_flags",
        "int",
        convert,
        keep_raw=True,
        doc="open flags -> O_WRONLY|O_CREAT|O_TRUNC for the architecture",
    )
