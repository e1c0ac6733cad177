"""Kernel enums by name: the BTF reader's enums, the shipped table, `enum NAME` decoders
and enum constants in values and conditions, with their errors. Everything but the first
test reads the shipped table (the `shipped` fixture hides the running kernel's BTF), so the
numbers and messages are the same on every machine."""

from __future__ import annotations

import struct

import pytest

from runner.codegen.render import render_c
from runner.errors import SpecError
from runner.kinds.decoders import Decoders, UnknownEnum
from runner.kinds.decoders.enums import enum_decoder
from runner.support import btf, enums

from .test_errors import assert_first_error
from .test_language import _btf, _type
from .util import spec_from_text

SHIPPED = "the shipped table (enums.txt, without the running kernel's BTF)"


@pytest.fixture
def shipped(monkeypatch):
    monkeypatch.setattr(btf, "VMLINUX", "/nonexistent/vmlinux")
    enums.enum_table.cache_clear()
    enum_decoder.cache_clear()
    yield
    enums.enum_table.cache_clear()
    enum_decoder.cache_clear()


def test_btf_enums_named_anonymous_signed_and_64_bit():
    strings = b"\0TCP_ESTABLISHED\0TCP_SYN_SENT\0big\0HUGE\0neg\0MINUS\0DUP\0"
    EST, SYN, BIG, HUGE, NEG, MINUS, DUP = 1, 17, 30, 34, 39, 43, 49
    types = (
        _type(0, btf.ENUM, 3, 4) + struct.pack("<IIIIII", EST, 1, SYN, 2, DUP, 1)
        + _type(BIG, btf.ENUM64, 1, 8) + struct.pack("<III", HUGE, 0, 1 << 8)
        + _type(NEG, btf.ENUM, 2, 4, kflag=1) + struct.pack("<IiIi", MINUS, -3, DUP, 2)
    )
    table = enums.from_btf(btf.parse(_btf(types, strings)), "test")
    # The anonymous enum holding TCP_ESTABLISHED is tcp_state (enums.ALIASES).
    assert table.enums == {"tcp_state": (("TCP_ESTABLISHED", 1), ("TCP_SYN_SENT", 2),
                                         ("DUP", 1)),
                           "big": (("HUGE", 1 << 40),), "neg": (("MINUS", -3), ("DUP", 2))}
    assert table.constant("TCP_SYN_SENT") == ("tcp_state", 2)
    assert table.constant("MINUS") == ("neg", -3)
    assert table.is_ambiguous("DUP") and table.constant("DUP") is None
    assert table.names_of("tcp_state") == {1: "TCP_ESTABLISHED", 2: "TCP_SYN_SENT"}


def test_the_shipped_table_reads_back_what_it_writes():
    table = enums.shipped_table()
    assert set(table.enums) == set(enums.SHIPPED)
    assert table.enum("tcp_state")["TCP_SYN_SENT"] == 2  # type: ignore[index]
    assert table.enum("softirq")["NET_RX_SOFTIRQ"] == 3  # type: ignore[index]
    assert table.constant("IPPROTO_TCP") == ("ipproto", 6)
    text = enums.SHIPPED_TABLE.read_text()
    header = "\n".join(ln[2:] for ln in text.splitlines() if ln.startswith("# "))
    assert enums.write_table(table, enums.SHIPPED, header) == text


def test_an_enum_decoder_shows_the_constant_and_keeps_the_number_in_json(shipped):
    d = Decoders.for_arch("x86_64").get("enum skb_drop_reason")
    assert d.text(3) == "SKB_DROP_REASON_NO_SOCKET"
    assert d.text(100000) == "100000"
    assert d.json_fields("reason", 3) == {"reason": 3, "reason_name": "SKB_DROP_REASON_NO_SOCKET"}
    # tcp_state, the older decoder, reads the same names and replaces the number.
    assert Decoders.for_arch("x86_64").get("tcp_state").json_fields("s", 2) == {
        "s": "TCP_SYN_SENT"}


def test_an_unknown_enum_is_named_with_the_nearest(shipped):
    with pytest.raises(UnknownEnum) as info:
        Decoders.for_arch("x86_64").get("enum tcp_stat")
    assert str(info.value) == f"unknown enum 'tcp_stat' in {SHIPPED} (did you mean 'tcp_state'?)"


EVENT = """\
name: x
structs:
  ev: [{state: s32}, {c: 'char[8]'}]
maps:
  out: {type: ringbuf, value: ev}
probes:
  p:
    attach: {tracepoint: "sock:inet_sock_set_state"}
    do:
      - if: "COND"
        then: [{emit: {to: out, set: {state: VALUE}}}]
output:
  - events: out
    decode: DECODE
"""


def _spec(cond: str = "args.newstate == TCP_SYN_SENT", value: str = "args.newstate",
          decode: str = "{state: enum tcp_state}") -> str:
    return EVENT.replace("COND", cond).replace("VALUE", value).replace("DECODE", decode)


def test_a_constant_in_a_condition_is_its_number_named_in_a_comment(shipped):
    c = render_c(spec_from_text(_spec("args.newstate == TCP_SYN_SENT && args.protocol == "
                                      "IPPROTO_TCP")))
    assert ("(((*(s32 *)((char *)ctx + 20)) == 2LL /* TCP_SYN_SENT */) && "
            "((*(u16 *)((char *)ctx + 30)) == 6LL /* IPPROTO_TCP */))") in c


def test_a_constant_as_a_value(shipped):
    c = render_c(spec_from_text(_spec("args.newstate != 0", "TCP_CLOSE")))
    assert "->state = 7LL /* TCP_CLOSE */;" in c


def test_the_default_format_shows_the_enum_names(shipped):
    spec = spec_from_text(_spec())
    assert spec.events[0].decode == (("state", "enum tcp_state"),)
    assert spec.events[0].format == "state={state_name} c={c}"


def test_an_aggregation_key_decodes_an_enum(shipped):
    text = ("name: x\naggregations:\n  by: {kind: count, key: {vec: u32}, decode: {vec: "
            "enum softirq}}\nprobes:\n  p:\n    attach: {tracepoint: \"irq:softirq_entry\"}\n"
            "    do:\n      - aggregate: {map: by, key: {vec: NET_RX_SOFTIRQ}}\n")
    spec = spec_from_text(text)
    assert spec.aggregations[0].keys[0].decode == "enum softirq"
    assert "3LL /* NET_RX_SOFTIRQ */" in render_c(spec)


@pytest.mark.parametrize("name,text,expected,hint", [
    ("misspelt_constant", _spec("args.newstate == TCP_SYNSENT"),
     "10:31: error: bad condition: unknown name 'TCP_SYNSENT' (did you mean 'TCP_SYN_SENT'?)",
     None),
    ("unknown_constant", _spec("args.newstate == ZZZ_NOPE"),
     "10:31: error: bad condition: unknown name 'ZZZ_NOPE' (no kernel enum has a constant "
     f"'ZZZ_NOPE' in {SHIPPED})", None),
    ("unknown_enum", _spec(decode="{state: enum tcp_stat}"),
     f"14:21: error: unknown enum 'tcp_stat' in {SHIPPED} (did you mean 'tcp_state'?)", None),
    ("enum_on_text", _spec(decode="{c: enum tcp_state}"),
     "14:17: error: field 'c' is char[8]: decoder 'enum tcp_state' takes a number", None),
])
def test_enum_errors_are_located(shipped, tmp_path, name, text, expected, hint):
    assert_first_error(tmp_path, name, text, expected, hint)


def test_every_enum_error_of_a_spec_is_reported(shipped):
    with pytest.raises(SpecError) as info:
        spec_from_text(_spec("args.newstate == TCP_SYNSENT",
                             decode="{state: enum tcp_stat, c: enum tcp_state}"))
    assert len(info.value.diagnostics) == 3


def test_a_constant_two_enums_number_differently_is_refused(monkeypatch, tmp_path):
    table = enums.parse_table("enum a\n\tTWICE 1\nenum b\n\tTWICE 2\n", "a test table")
    monkeypatch.setattr("runner.check.resolve.enum_table", lambda arch: table)
    assert_first_error(tmp_path, "ambiguous", _spec("args.newstate == TWICE"),
                       "10:31: error: bad condition: 'TWICE' is a constant of several kernel "
                       "enums, with different values (a test table): write the number", None)
