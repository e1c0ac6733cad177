"""TCP state number -> the kernel's name (TCP_ESTABLISHED...), as the
sock:inet_sock_set_state tracepoint prints them: the `enum tcp_state` decoder of
runner/kinds/decoders/enums.py (the running kernel's names, else the shipped table's),
with the name replacing the number in JSON too, as it always has."""

from __future__ import annotations

from runner.kinds.decoders.base import Decoder
from runner.kinds.decoders.enums import enum_decoder


def tcp_state_decoder(arch: str) -> Decoder:
    def name(state: int) -> str:  # the table is read at the first record, not at start-up
        return str(enum_decoder(arch, "tcp_state", keep_raw=False)(state))
    return Decoder("tcp_state", "int", name, keep_raw=False,
                   doc="TCP state -> name (1 -> TCP_ESTABLISHED); else the number")
