"""Kernel address -> symbol, from /proc/kallsyms when it shows addresses, else hex.

Without root (or with kptr_restrict) every address in kallsyms reads as 0: then there
is nothing to look up and addresses print as 0xffffffff81234567.
"""

from __future__ import annotations

from runner.kinds.decoders.base import Decoder
from runner.kinds.decoders.text import safe_text
from runner.symbols.kernel import KALLSYMS, KernelSymbols

__all__ = ["KALLSYMS", "KernelSymbols", "ksym_decoder"]


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
