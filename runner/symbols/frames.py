"""A resolved stack frame, and how it reads: `name+offset` as bpftrace prints it, or the
address in hex when nothing names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Frame:
    address: int
    name: Optional[str] = None  # None: unresolved, shown as the address
    offset: int = 0  # from the symbol's start
    module: Optional[str] = None  # the file (user) or kernel module, when known
    kernel: bool = False
    marker: bool = False  # a placeholder such as `[lost stack]`: its name alone, no offset

    @property
    def text(self) -> str:
        """bpftrace's form: `func+off` (decimal offset, `+0` included: bpftrace prints it
        for a frame interrupted at a function's first instruction), else `0x...`."""
        if self.name is None:
            return f"{self.address:#x}"
        return self.name if self.marker else f"{self.name}+{self.offset}"
