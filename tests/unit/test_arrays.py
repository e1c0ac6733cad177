"""Integer arrays of a tracepoint's record (`__u8 saddr[4]`): copied whole into an array
field declared alike, refused where a number, a string or another length is wanted, and
decoded by the address decoders that take their length."""

from __future__ import annotations

import pytest

from runner.check.fields import _option_args
from runner.codegen.render import render_c
from runner.kinds.decoders import Decoders
from runner.model import expr as e
from runner.model.spec import Assign

from .test_errors import assert_first_error
from .util import spec_from_text

HEAD = ("name: x\nstructs:\n  ev: [{a: u32}, {s: 'char[8]'}, {v4: 'u8[4]'}, {v6: 'u8[16]'},"
        " {w: 'u16[2]'}]\nmaps:\n  out: {type: ringbuf, value: ev}\n")
TP = HEAD + 'probes:\n  p:\n    attach: {tracepoint: "sock:inet_sock_set_state"}\n    do:\n%s'
NO_SET = "leave it out: it stays zero"

# name -> (spec text, first diagnostic "LINE:COL: error: MESSAGE", hint or None)
CASES = {
    "length_differs": (
        TP % "      - emit: {to: out, set: {v4: args.saddr_v6}}\n",
        "10:35: error: field 'v4' is u8[4] but 'args.saddr_v6' is u8[16]: an array is copied "
        "whole, into a field of its own type and length",
        "declare the field u8[16]",
    ),
    "element_type_differs": (
        TP % "      - emit: {to: out, set: {w: args.saddr}}\n",
        "10:34: error: field 'w' is u16[2] but 'args.saddr' is u8[4]: an array is copied "
        "whole, into a field of its own type and length",
        "declare the field u8[4]",
    ),
    "array_in_arithmetic": (
        TP % '      - emit: {to: out, set: {a: "args.saddr + 1"}}\n',
        "10:46: error: bad value: '+' needs a number, not an array (u8[4])",
        None,
    ),
    "array_in_a_comparison": (
        TP % '      - if: "args.daddr == 16777343"\n        then: []\n',
        "10:25: error: bad condition: '==' needs a number, not an array (u8[4])",
        None,
    ),
    "array_into_a_number": (
        TP % "      - emit: {to: out, set: {a: args.saddr}}\n",
        "10:34: error: 'args.saddr' is an array (u8[4]), not a number for a u32",
        None,
    ),
    "array_into_a_string": (
        TP % "      - emit: {to: out, set: {s: args.saddr}}\n",
        "10:34: error: 'args.saddr' is an array (u8[4]), not a string",
        "an array fills a field declared u8[4]",
    ),
    "number_into_an_array": (
        TP % "      - emit: {to: out, set: {v4: pid}}\n",
        "10:35: error: field 'v4' is an array (u8[4]): it takes an array value (a tracepoint's "
        "array field such as args.saddr), not a number",
        NO_SET,
    ),
    "literal_into_an_array": (
        TP % "      - emit: {to: out, set: {v4: 7}}\n",
        "10:35: error: field 'v4' is an array (u8[4]): it takes an array value (a tracepoint's "
        "array field such as args.saddr), not 7",
        NO_SET,
    ),
    "let_of_an_array": (
        TP % "      - let: {x: args.saddr}\n",
        "10:18: error: 'args.saddr' is not a number: let names numbers and looked-up values",
        "arrays go straight into an array field",
    ),
    "no_record_in_a_raw_tracepoint": (
        HEAD + "probes:\n  p:\n    attach: {raw_tracepoint: inet_sock_set_state}\n    do:\n"
        "      - emit: {to: out, set: {v4: args.saddr}}\n",
        "10:35: error: bad value: this probe has no argument 'saddr'; it has: none",
        None,
    ),
    "decoder_of_another_length": (
        TP % "      - emit: {to: out, set: {v6: args.saddr_v6}}\n"
        "output:\n  - events: out\n    decode: {v6: ipv4}\n",
        "13:18: error: field 'v6' is u8[16]: decoder 'ipv4' takes an unsigned number of at most "
        "32 bits or u8[4]",
        None,
    ),
    "number_decoder_on_an_array": (
        TP % "      - emit: {to: out, set: {v4: args.saddr}}\n"
        "output:\n  - events: out\n    decode: {v4: tcp_state}\n",
        "13:18: error: field 'v4' is u8[4]: decoder 'tcp_state' takes a number",
        None,
    ),
    "bytes_decoder_on_a_number": (
        TP % "      - emit: {to: out, set: {v4: args.saddr}}\n"
        "output:\n  - events: out\n    decode: {a: inet}\n",
        "13:17: error: field 'a' is u32: decoder 'inet' takes u8[4] or u8[16]",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_meaning_error(tmp_path, name):
    assert_first_error(tmp_path, name, *CASES[name])


def test_a_records_integer_arrays_are_arrays_and_its_char_arrays_strings():
    args = _option_args("x86_64", "tracepoint", "sock:inet_sock_set_state")
    assert args["saddr"].value.node == e.RecordArray(32, "u8", 4)
    assert args["daddr_v6"].value.node == e.RecordArray(56, "u8", 16)
    assert (args["saddr"].value.scalar, args["saddr"].value.string) == (None, None)
    comm = _option_args("x86_64", "tracepoint", "sched:sched_process_exit")["comm"]
    assert comm.value.array is None and comm.value.string == e.RecordChars(8, 16)


def test_an_array_is_copied_whole_with_a_constant_size():
    spec = spec_from_text(TP % "      - emit: {to: out, set: {v4: args.saddr, "
                          "v6: args.daddr_v6}}\n")
    (emit,) = spec.probes[0].candidates[0].function.actions
    assert emit.assigns == (Assign("v4", "copy", e.RecordArray(32, "u8", 4), 4),
                            Assign("v6", "copy", e.RecordArray(56, "u8", 16), 16))
    c = render_c(spec)
    assert "bpf_probe_read_kernel(er_ev->v4, 4, (char *)ctx + 32);" in c
    assert "bpf_probe_read_kernel(er_ev->v6, 16, (char *)ctx + 56);" in c


def test_a_looked_up_structs_array_is_copied_from_the_local_copy():
    spec = spec_from_text(
        TP.replace("maps:\n", "maps:\n  h: {type: hash, key: u32, value: ev}\n")
        % ("      - store: {map: h, key: tid, value: {v4: args.saddr}}\n"
           "      - let: {c: {lookup: {map: h, key: tid}}}\n"
           "      - emit: {to: out, set: {v4: c.v4}}\n"))
    assert "__builtin_memcpy(er_ev->v4, er_v_c.v4, 4);" in render_c(spec)


def test_an_array_map_key_is_filled_in_its_wrapper():
    spec = spec_from_text(
        TP.replace("maps:\n", "maps:\n  by: {type: hash, key: 'u8[4]', value: u64}\n")
        % ("      - count: {map: by, key: args.daddr}\n"
           "      - store: {map: by, key: args.saddr, value: 1}\n"))
    c = render_c(spec)
    assert c.count("struct er_key_by er_key;") == 2
    assert "bpf_probe_read_kernel(er_key.key, 4, (char *)ctx + 36);" in c


@pytest.mark.parametrize("raw,expected", [
    (bytes([127, 0, 0, 1]), "127.0.0.1"),
    (bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]), "127.0.0.1"),  # an IPv4 socket's
    (bytes(15) + b"\x01", "::1"),
    (bytes([0x20, 0x01, 0x0d, 0xb8]) + bytes(11) + b"\x05", "2001:db8::5"),
])
def test_the_ip_decoder_shows_both_families_as_the_tools_print_them(raw, expected):
    assert Decoders.for_arch("x86_64").get("ip").text(raw) == expected
