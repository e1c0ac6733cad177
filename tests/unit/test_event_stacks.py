"""Stacks as fields of events (ring and perf buffers) and user stacks in map values: the
model (a struct holding a ustack carries the pid, hidden), the rendered capture, the located
errors, and what a record's ids become (frames: bpftrace's printf lines in text, lists in
JSON), against a fake kernel and fake symbol tables."""

from __future__ import annotations

import ctypes
import json
import struct

import pytest

from runner.codegen.render import render_c
from runner.errors import SpecError
from runner.model.stacks import STACK_PID
from runner.output.json import _encode
from runner.output.stacks import FieldStack
from runner.runtime.decode import record_decoder
from runner.runtime.records import format_record
from runner.runtime.stacks import StackReader, has_stacks, with_stacks
from runner.symbols.frames import Frame

from .test_aggregations_spec import fake_types
from .test_stacks import FakeStacks, Names
from .util import spec_from_text

EVENTS = """\
name: t
structs:
  sig:
    - pid: u32
    - kstack: "kstack[8]"
    - ustack: ustack
maps:
  events: {{type: {buffer}, value: sig}}
{output}probes:
  p:
    attach: {{tracepoint: "signal:signal_generate"}}
    do:
      - emit: {{to: events, set: {set}}}
"""
SET = "{pid: pid, kstack: kstack, ustack: ustack}"


def events(buffer="ringbuf", set_=SET, output=""):
    return spec_from_text(EVENTS.format(buffer=buffer, set=set_, output=output))


def error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_text(text)
    d = info.value.diagnostics[0]
    return f"{d.location.line}:{d.location.col}: {d.message}"


def test_an_event_with_a_ustack_carries_the_pid_hidden_after_its_fields():
    s = events()
    sig = next(st for st in s.structs if st.name == "sig")
    assert [(m.name, str(m.type), m.offset) for m in sig.layout.fields] == [
        ("pid", "u32", 0), ("kstack", "kstack[8]", 4), ("ustack", "ustack", 8),
        (STACK_PID, "u32", 12)]
    assert [m.depth for m in s.stacks] == [8, 127] and s.stack_pids is not None
    (out,) = s.events
    assert out.format == "pid={pid} kstack={kstack} ustack={ustack}"  # the pid not shown
    c = render_c(s)
    assert "er_ev->kstack = er_stack_id(er_stacks_8.get_stackid(ctx, 0), 0);" in c
    assert "er_ev->ustack = er_stack_id(er_stacks_127.get_stackid(ctx, BPF_F_USER_STACK), 0);" \
        in c
    assert "er_ev->er_stack_pid = er_note_pid(" in c  # sent once: its mappings read early


def test_a_perf_event_with_a_kstack_alone_needs_no_pid():
    s = spec_from_text(EVENTS.format(buffer="perf_event_array", set="{kstack: kstack}",
                                     output="").replace('    - ustack: ustack\n', "")
                       .replace("    - pid: u32\n", ""))
    (sig,) = [st for st in s.structs if st.name == "sig"]
    assert [m.name for m in sig.layout.fields] == ["kstack"] and s.stack_pids is None
    assert "er_ev.kstack = er_stack_id(er_stacks_8.get_stackid(ctx, 0), 0);" in render_c(s)


STORED = """\
name: t
structs:
  taken:
    - ustack: "ustack[4]"
    - since: u64
maps:
  last: {type: hash, key: u32, value: taken, max_entries: 64}
aggregations:
  at_exit: {kind: count, key: {ustack: "ustack[4]", comm: "char[16]"}}
probes:
  sig:
    attach: {tracepoint: "signal:signal_generate"}
    do:
      - store: {map: last, key: pid, value: {ustack: ustack, since: ktime}}
  exit:
    attach: {tracepoint: "sched:sched_process_exit"}
    do:
      - let: {b: {lookup: {map: last, key: pid}}}
      - aggregate: {map: at_exit, key: {ustack: b.ustack, comm: comm}}
"""


def test_a_stored_ustack_keeps_its_pid_and_the_key_takes_that_pid_not_the_current_one():
    c = render_c(spec_from_text(STORED))
    assert "er_val.er_stack_pid = er_note_pid(" in c
    assert "er_key.er_stack_pid = er_v_b.er_stack_pid;" in c  # the process that took it
    assert c.count("er_note_pid(") == 2  # the definition and the store: none at the copy


@pytest.mark.parametrize("text, expected", [
    (EVENTS.format(buffer="ringbuf", set="{pid: pid, kstack: kstack}", output=""),
     "13:33: field 'ustack' of struct 'sig' is a ustack: set it (e.g. ustack: ustack)"),
    (EVENTS.format(buffer="ringbuf", set="{pid: pid, kstack: kstack, ustack: ustack, "
                   "er_stack_pid: 1}", output=""),
     "13:76: struct 'sig' has no field 'er_stack_pid'"),
    (EVENTS.format(buffer="ringbuf", set=SET,
                   output='output:\n  - {events: events, format: "{er_stack_pid}"}\n'),
     "10:31: '{er_stack_pid}' names no field of sig"),
    (EVENTS.format(buffer="ringbuf", set="{pid: pid, kstack: ustack, ustack: ustack}",
                   output=""),
     "13:52: field 'kstack' is kstack[8]: it takes the value kstack, not 'ustack'"),
    (STORED.replace('at_exit: {kind: count, key: {ustack: "ustack[4]"',
                    'at_exit: {kind: count, key: {ustack: "ustack"'),
     "19:49: field 'ustack' is ustack but 'b.ustack' is ustack[4]: a stack id indexes the "
     "stack map of its own kind and depth"),
])
def test_stack_fields_misused_are_located_errors(text, expected):
    assert error(text) == expected


def test_an_unset_stack_field_without_set_is_reported_at_the_emit():
    text = EVENTS.format(buffer="ringbuf", set="{}", output="").replace(
        "set: {}}", "}")
    assert error(text) == "13:15: field 'kstack' of struct 'sig' is a kstack[8]: set it " \
                          "(e.g. kstack: kstack)"


# ---- what a record's ids become ----------------------------------------------------------


def test_a_stack_field_formats_as_bpftraces_printf_and_encodes_as_a_json_list():
    frames = FieldStack(["f1+4", "main+9", "evil\x1b[2J"])
    assert format_record("k={k} n={n}", {"k": frames, "n": 3}, "o") == \
        "k=\n        f1+4\n        main+9\n        evil\\x1b[2J\n n=3"
    assert format_record("[{k}]", {"k": FieldStack()}, "o") == "[]"  # empty: nothing
    assert json.loads(_encode({"k": frames})) == {"k": ["f1+4", "main+9", "evil\x1b[2J"]}


def record_bytes(pid: int, kstack: int, ustack: int, hidden: int) -> bytes:
    return struct.pack("=IiiI", pid, kstack, ustack, hidden)


def decoder(s, k):
    reader = StackReader(s, Names(), Names())  # type: ignore[arg-type]
    sig = next(st for st in s.structs if st.name == "sig")
    assert has_stacks(sig)
    return with_stacks(record_decoder(fake_types(s), sig, False), reader, k)


def test_a_record_comes_out_with_frames_and_without_the_hidden_pid():
    s = events()
    k = FakeStacks([], {("er_stacks_8", 3): [0xa1, 0xa2], ("er_stacks_127", 5): [0xb1, 0xdead]})
    dec = decoder(s, k)
    buf = ctypes.create_string_buffer(record_bytes(77, 3, 5, 4242))
    fields = dec(ctypes.addressof(buf), 16)
    assert fields == {"pid": 77, "kstack": ["fa1+4", "fa2+4"],
                      "ustack": ["fb1@4242+4", "0xdead"]}  # user frames in the hidden pid
    assert format_record(s.events[0].format, fields, "o") == (
        "pid=77 kstack=\n        fa1+4\n        fa2+4\n ustack=\n        fb1@4242+4\n"
        "        0xdead\n")
    # An id keeps its stack for the run: a second record with it costs no map read.
    dec(ctypes.addressof(buf), 16)
    assert k.reads == [("er_stacks_8", 3), ("er_stacks_127", 5)]


@pytest.mark.parametrize("ustack, expected", [
    (-14, []),  # -EFAULT: no user stack here (a kernel thread): empty, no loss
    (-17, ["[lost stack]"]),  # -EEXIST: counted as lost in the kernel, shown as the marker
    (9, ["[lost stack]"]),  # an id the map does not hold
])
def test_a_record_without_a_stack_shows_it_empty_or_lost(ustack, expected):
    s = events()
    dec = decoder(s, FakeStacks([], {("er_stacks_8", 3): [0xa1]}))
    buf = ctypes.create_string_buffer(record_bytes(1, 3, ustack, 1))
    assert dec(ctypes.addressof(buf), 16)["ustack"] == expected


def test_frames_read_once_are_kept_per_pid():
    # One stack id taken in two processes: the addresses are the same, the names may not be.
    s = events()
    k = FakeStacks([], {("er_stacks_8", 1): [0xa1], ("er_stacks_127", 2): [0xb1]})
    dec = decoder(s, k)
    got = []
    for pid in (10, 11, 10):
        buf = ctypes.create_string_buffer(record_bytes(pid, 1, 2, pid))
        got.append(dec(ctypes.addressof(buf), 16)["ustack"])
    assert got == [["fb1@10+4"], ["fb1@11+4"], ["fb1@10+4"]]
    assert Frame(0xb1, "x", 0).text == "x+0"
