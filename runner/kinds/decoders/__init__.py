"""Decoders: raw values made readable, found by name (a spec field's `decode: errno`).

    registry = Decoders.for_arch("x86_64")
    registry.get("errno").text(-2)                     -> "ENOENT"
    registry.get("errno").json_fields("ret", -2)       -> {"ret": -2, "ret_name": "ENOENT"}
    registry.get("errnos")                             -> UnknownDecoder, naming the known ones
    registry.get("enum tcp_state").text(2)             -> "TCP_SYN_SENT" (decoders/enums.py)

One module per decoder; this one only lists them. Every text a decoder returns is safe
for a terminal: names from outside the kernel (users) are escaped (text.safe_text).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Tuple

from runner.kinds.decoders.base import DecodeError, Decoder, Json
from runner.kinds.decoders.cgroup import cgroup_decoder
from runner.kinds.decoders.container import container_decoder
from runner.kinds.decoders.enums import UnknownEnum, enum_decoder, enum_name
from runner.kinds.decoders.errnos import ERRNO, SYSCALL_RET
from runner.kinds.decoders.inet import INET, IP, IPV4, IPV6, PORT_BE
from runner.kinds.decoders.ksym import KALLSYMS, KernelSymbols, ksym_decoder
from runner.kinds.decoders.open_flags import open_flags_decoder
from runner.kinds.decoders.signals import SIGNAL
from runner.kinds.decoders.syscall import syscall_decoder
from runner.kinds.decoders.tcp_state import tcp_state_decoder
from runner.kinds.decoders.text import safe_text
from runner.kinds.decoders.uid import UID
from runner.kinds.registry import Registry

__all__ = [
    "DecodeError",
    "Decoder",
    "Decoders",
    "Json",
    "UnknownDecoder",
    "UnknownEnum",
    "safe_text",
]


class UnknownDecoder(LookupError):
    """A spec names a decoder that does not exist. The checker turns this into a
    diagnostic at the field's location."""

    def __init__(self, name: str, known: Tuple[str, ...]):
        self.name = name
        self.known = known
        super().__init__(f"unknown decoder {name!r}; known: {', '.join(known)}, and "
                         "'enum NAME' (a kernel enum)")


@dataclass(frozen=True)
class Decoders:
    """Every decoder for one architecture, in a Registry (as every other kind); built once
    per architecture and kallsyms file, however many stages ask."""

    arch: str
    registry: Registry[Decoder]

    @classmethod
    def for_arch(cls, arch: str, kallsyms: Path = KALLSYMS) -> Decoders:
        """Every decoder, those that depend on it for `arch` (KeyError: no table for it)."""
        return _for_arch(arch, kallsyms)

    @property
    def names(self) -> Tuple[str, ...]:
        return tuple(sorted(self.registry.names()))

    def get(self, name: str) -> Decoder:
        """The decoder called `name`, or `enum NAME` for a kernel enum; UnknownDecoder or
        UnknownEnum (a user's error, which the checker locates) when there is none."""
        enum = enum_name(name)
        if enum is not None:
            return enum_decoder(self.arch, enum)
        found = self.registry.get(name)
        if found is None:
            raise UnknownDecoder(name, self.names)
        return found


@cache
def _for_arch(arch: str, kallsyms: Path) -> Decoders:
    registry: Registry[Decoder] = Registry("decoder")
    for d in (
        syscall_decoder(arch),
        open_flags_decoder(arch),
        ERRNO,
        SYSCALL_RET,
        SIGNAL,
        IPV4,
        IPV6,
        INET,
        IP,
        PORT_BE,
        ksym_decoder(KernelSymbols(kallsyms)),
        UID,
        tcp_state_decoder(arch),
        cgroup_decoder(),
        container_decoder(),
    ):
        registry.register(d.name, d)
    return Decoders(arch, registry)
