"""`decode:` on an event output: located errors, the default format, decoded records."""

from __future__ import annotations

import pytest

from runner.errors import SpecError
from runner.kinds.decoders import Decoders
from runner.runtime.decode import RecordDecoder
from runner.runtime.readable import readable

from .util import spec_from_text

SPEC = """\
name: t
structs:
  ev:
    - nr: s64
    - daddr: u8[4]
maps:
  events: {type: ringbuf, value: ev}
probes:
  p:
    attach: {raw_tracepoint: sys_enter}
    do:
      - emit: {to: events, set: {nr: syscall_nr}}
output:
  - events: events
    decode: DECODE
"""


def test_the_default_format_shows_names_and_decoded_values():
    s = spec_from_text(SPEC.replace("DECODE", "{nr: syscall, daddr: ipv4}"))
    (ev,) = s.events
    assert (ev.format, ev.decode) == ("nr={nr_name} daddr={daddr}",
                                      (("nr", "syscall"), ("daddr", "ipv4")))


def test_a_format_may_use_field_name():
    text = SPEC.replace("DECODE", "{nr: syscall}") + '    format: "{nr} {nr_name:>8}"\n'
    assert spec_from_text(text).events[0].format == "{nr} {nr_name:>8}"


@pytest.mark.parametrize("decode,expected", [
    ("{nr: sycall}", "15:18: unknown decoder 'sycall'; known: cgroup, container, errno, inet, "
                     "ip, ipv4, ipv6, ksym, open_flags, port_be, signal, syscall, syscall_ret, "
                     "tcp_state, uid, and 'enum NAME' (a kernel enum)"),
    ("{pid: syscall}", "15:14: struct 'ev' has no field 'pid'"),
    # A negative s64 is no IPv4 address or port: refused before it fails on a record.
    ("{nr: ipv4}", "15:18: field 'nr' is s64: decoder 'ipv4' takes an unsigned number of at "
                   "most 32 bits or u8[4]"),
    ("{nr: port_be}", "15:18: field 'nr' is s64: decoder 'port_be' takes an unsigned number "
                      "of at most 16 bits"),
])
def test_errors_are_located(decode, expected):
    with pytest.raises(SpecError) as info:
        spec_from_text(SPEC.replace("DECODE", decode))
    d = info.value.diagnostics[0]
    assert f"{d.location.line}:{d.location.col}: {d.message}" == expected


def test_records_keep_the_raw_number_beside_its_name():
    s = spec_from_text(SPEC.replace("DECODE", "{nr: syscall, daddr: ipv4}"))
    (ev,) = s.events
    class Raw:
        @staticmethod
        def from_buffer_copy(buf, offset):
            return None

    dec = RecordDecoder(ev.struct, Raw, lambda r: {"nr": 110, "daddr": [127, 0, 0, 1]}, 12, 0)
    out = readable(dec, ev.decode, Decoders.for_arch("x86_64")).at(b"", 0)
    assert out == {"nr": 110, "nr_name": "getppid", "daddr": "127.0.0.1"}
