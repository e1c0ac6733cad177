"""`enum NAME`: a kernel enum's value -> its constant's name (`decode: {reason: enum
skb_drop_reason}` -> SKB_DROP_REASON_NO_SOCKET), from runner/support/enums.py: the running
kernel's BTF, else the shipped table. A value the enum does not name shows as its number.
JSON keeps the number under the field's name and the constant under FIELD_name: the
numbers differ between kernels, so both matter."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Optional

from runner.kinds.decoders.base import Decoder
from runner.support.enums import EnumTable, enum_table
from runner.support.hints import did_you_mean

PREFIX = "enum "


class UnknownEnum(LookupError):
    def __init__(self, name: str, table: EnumTable):
        self.name = name
        hint = did_you_mean(name, table.enums)
        super().__init__(f"unknown enum '{name}' in {table.source}"
                         + (f" ({hint})" if hint else ""))


def enum_name(decoder: str) -> Optional[str]:
    """NAME of an `enum NAME` decoder, else None."""
    if not decoder.startswith(PREFIX):
        return None
    return decoder[len(PREFIX):].strip()


@lru_cache(maxsize=64)
def enum_decoder(arch: str, name: str, *, keep_raw: bool = True) -> Decoder:
    """UnknownEnum when neither the kernel nor the table has it."""
    table = enum_table(arch)
    names: Dict[int, str] = table.names_of(name)
    if not names:
        raise UnknownEnum(name, table)
    return Decoder(f"{PREFIX}{name}", "int", lambda raw: names.get(raw, str(raw)),
                   keep_raw=keep_raw, doc=f"enum {name} value -> its constant; else the number")
