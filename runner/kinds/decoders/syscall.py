"""Syscall number -> name for one architecture (runner/support/syscalls tables)."""

from __future__ import annotations

from runner.kinds.decoders.base import Decoder
from runner.support.syscalls import names_by_number


def syscall_decoder(arch: str) -> Decoder:
    # The table is read once per registry, not per event.
    names = names_by_number(arch)

    def convert(number: int) -> str:
        return names.get(number, str(number))

    return Decoder(
        "syscall",
        "int",
        convert,
        keep_raw=True,
        doc=f"syscall number -> name on {arch} (39 -> getpid on x86_64); unknown: the number",
    )
