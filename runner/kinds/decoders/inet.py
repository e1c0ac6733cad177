"""Addresses and ports in network byte order -> text.

A tracepoint's `__u8 saddr[4]` arrives as 4 bytes; a `__be32` (struct sock's
skc_daddr) read into a u32 field arrives as an int whose in-memory bytes are the
address: turned back into bytes in the host's order (both supported architectures are
little-endian, where 127.0.0.1 reads as 0x0100007f).
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any, Union

from runner.kinds.decoders.base import DecodeError, Decoder


def _as_bytes(raw: Any, size: int, name: str) -> bytes:
    if isinstance(raw, int):
        if not 0 <= raw < 1 << (8 * size):
            raise DecodeError(f"decoder {name!r}: {raw} does not fit {size} bytes")
        return raw.to_bytes(size, sys.byteorder)
    data = bytes(raw)
    if len(data) != size:
        raise DecodeError(f"decoder {name!r} takes {size} bytes, got {len(data)}")
    return data


def ipv4_text(raw: Union[int, bytes]) -> str:
    return str(ipaddress.IPv4Address(_as_bytes(raw, 4, "ipv4")))


def ipv6_text(raw: Union[int, bytes]) -> str:
    address = ipaddress.IPv6Address(_as_bytes(raw, 16, "ipv6"))
    # IPv4-mapped addresses print as ::ffff:127.0.0.1, as the kernel's %pI6c does
    # (Python before 3.13 prints ::ffff:7f00:1).
    if address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def inet_text(raw: bytes) -> str:
    """4 or 16 bytes: the family follows from the length."""
    data = bytes(raw)
    if len(data) == 4:
        return ipv4_text(data)
    if len(data) == 16:
        return ipv6_text(data)
    raise DecodeError(f"decoder 'inet' takes 4 or 16 bytes, got {len(data)}")


def ip_text(raw: bytes) -> str:
    """An address of either family as tracepoints keep it: 4 bytes, or 16 where an IPv4
    socket's address is stored mapped (the kernel's TP_STORE_ADDRS fills the *_v6 fields
    of sock:inet_sock_set_state and tcp:* with ::ffff:a.b.c.d), shown as plain IPv4 the
    way BCC's tcp tools print it. The family field still says which kind of socket."""
    data = bytes(raw)
    if len(data) not in (4, 16):
        raise DecodeError(f"decoder 'ip' takes 4 or 16 bytes, got {len(data)}")
    mapped = ipaddress.IPv6Address(data).ipv4_mapped if len(data) == 16 else None
    return str(mapped) if mapped is not None else inet_text(data)


def port_from_network_order(raw: int) -> int:
    """A __be16 read into an int (struct sock's skc_dport): 0x5000 -> 80. The tracepoints'
    sport/dport are already in host order and need no decoder."""
    if not 0 <= raw <= 0xFFFF:
        raise DecodeError(f"decoder 'port_be': {raw} is not a 16-bit port")
    return int.from_bytes(raw.to_bytes(2, sys.byteorder), "big")


IPV4 = Decoder(
    "ipv4",
    "int|bytes",
    ipv4_text,
    keep_raw=False,
    doc="IPv4 address, 4 bytes or a __be32 as read -> 127.0.0.1",
    sizes=(4,),
    int_width=4,
)
IPV6 = Decoder("ipv6", "int|bytes", ipv6_text, keep_raw=False, doc="IPv6 address, 16 bytes -> ::1",
               sizes=(16,), int_width=8)
INET = Decoder(
    "inet", "bytes", inet_text, keep_raw=False, doc="4 or 16 address bytes -> IPv4 or IPv6 text",
    sizes=(4, 16),
)
IP = Decoder(
    "ip",
    "bytes",
    ip_text,
    keep_raw=False,
    doc="4 or 16 address bytes -> 127.0.0.1 or ::1; an IPv4-mapped one (::ffff:127.0.0.1, as "
    "tracepoints' *_v6 fields hold an IPv4 socket's address) -> 127.0.0.1",
    sizes=(4, 16),
)
PORT_BE = Decoder(
    "port_be",
    "int",
    port_from_network_order,
    keep_raw=False,
    doc="a port in network byte order (__be16) -> its number",
    int_width=2,
)
