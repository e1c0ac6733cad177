"""Kernel address -> symbol, from /proc/kallsyms when it shows addresses, else hex.

Without root (or with kptr_restrict) every address in kallsyms reads as 0: then there
is nothing to look up and addresses print as 0xffffffff81234567.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import List, Optional, Tuple

from runner.kinds.decoders.base import Decoder
from runner.kinds.decoders.text import safe_text

KALLSYMS = Path("/proc/kallsyms")


class KernelSymbols:
    """Sorted (address, name) pairs; read on first use, once."""

    def __init__(self, path: Path = KALLSYMS):
        self.path = path
        self._table: Optional[Tuple[List[int], List[str]]] = None

    def _load(self) -> Tuple[List[int], List[str]]:
        pairs = {}
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            text = ""  # no kallsyms at all (a container): hex for everything
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            address = int(parts[0], 16)
            # The first name at an address wins: kallsyms lists aliases after it.
            if address and address not in pairs:
                pairs[address] = parts[2]
        ordered = sorted(pairs.items())
        return [a for a, _ in ordered], [n for _, n in ordered]

    def resolve(self, address: int) -> str:
        if self._table is None:
            self._table = self._load()
        addresses, names = self._table
        i = bisect.bisect_right(addresses, address) - 1
        if i < 0 or (i == len(addresses) - 1 and address != addresses[i]):
            # Below the first symbol, or past the last one, whose size we do not know.
            return hex(address)
        offset = address - addresses[i]
        return names[i] if offset == 0 else f"{names[i]}+{offset:#x}"


def ksym_decoder(symbols: KernelSymbols) -> Decoder:
    def convert(address: int) -> str:
        # A negative s64 field holds the same address.
        return safe_text(symbols.resolve(address & 0xFFFFFFFFFFFFFFFF))

    return Decoder(
        "ksym",
        "int",
        convert,
        keep_raw=True,
        doc="kernel address -> symbol[+offset] from /proc/kallsyms, else hex",
    )
