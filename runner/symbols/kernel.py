"""Kernel addresses to symbols, from /proc/kallsyms when it shows addresses.

Without root (or with kptr_restrict) every address in kallsyms reads as 0: then there is
nothing to look up and frames print as their addresses. Read once, on first use; a module
loaded later is not seen (its frames print as addresses).
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import List, Optional, Tuple

from runner.symbols.frames import Frame

KALLSYMS = Path("/proc/kallsyms")


class KernelSymbols:
    """Sorted (address, name, module) triples."""

    def __init__(self, path: Path = KALLSYMS):
        self.path = path
        self._table: Optional[Tuple[List[int], List[str], List[Optional[str]]]] = None

    def _load(self) -> Tuple[List[int], List[str], List[Optional[str]]]:
        pairs = {}
        try:
            text = self.path.read_text(errors="replace")
        except OSError:
            text = ""  # no kallsyms at all (a container): addresses for everything
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3:
                continue
            try:
                address = int(parts[0], 16)
            except ValueError:
                continue
            # The first name at an address wins: kallsyms lists aliases after it.
            if address and address not in pairs:
                module = parts[3].strip("[]") if len(parts) > 3 else None
                pairs[address] = (parts[2], module)
        ordered = sorted(pairs.items())
        return ([a for a, _ in ordered], [n for _, (n, _) in ordered],
                [m for _, (_, m) in ordered])

    def _lookup(self, address: int) -> Optional[Tuple[str, int, Optional[str]]]:
        if self._table is None:
            self._table = self._load()
        addresses, names, modules = self._table
        i = bisect.bisect_right(addresses, address) - 1
        if i < 0 or (i == len(addresses) - 1 and address != addresses[i]):
            # Below the first symbol, or past the last one, whose size we do not know.
            return None
        return names[i], address - addresses[i], modules[i]

    def frame(self, address: int) -> Frame:
        found = self._lookup(address)
        if found is None:
            return Frame(address, kernel=True)
        name, offset, module = found
        return Frame(address, name, offset, module, kernel=True)

    def resolve(self, address: int) -> str:
        """`name+0xoff` (hex offset: the `ksym` decoder's form), else the address in hex."""
        found = self._lookup(address)
        if found is None:
            return hex(address)
        name, offset, _ = found
        return name if offset == 0 else f"{name}+{offset:#x}"
