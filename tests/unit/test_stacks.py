"""Stack values (kstack, ustack): the checker's model and its located errors, the rendered
capture, and what a dump makes of stack ids (frames, bpftrace's layout, JSON lists, folded
lines), against a fake kernel and fake symbol tables."""

from __future__ import annotations

import os
import struct
import sys
from dataclasses import replace

import pytest

from runner.codegen.render import render_c
from runner.errors import SpecError
from runner.model.aggregates import AggSlotC
from runner.model.stacks import STACK_LOSS
from runner.runtime.aggdump import Aggregations
from runner.runtime.stack_files import folded_lines
from runner.runtime.stacks import StackReader
from runner.symbols.frames import Frame
from runner.symbols.maps import Mapping, open_mapped, parse_maps

from .test_aggregations_spec import Sink, fake_types
from .util import spec_from_text

BASE = """\
name: t
{top}aggregations:
  samples: {{kind: count, key: {key}}}
probes:
  p:
    attach: {{tracepoint: "syscalls:sys_enter_getppid"}}
    do:
      - aggregate: {{map: samples, key: {values}}}
"""
PROFILE_KEY = '{kstack: kstack, ustack: "ustack[8]", comm: "char[16]"}'
PROFILE_VALUES = "{kstack: kstack, ustack: ustack, comm: comm}"


def spec(key: str = PROFILE_KEY, values: str = PROFILE_VALUES, top: str = ""):
    return spec_from_text(BASE.format(key=key, values=values, top=top))


def error(key: str, values: str, top: str = "", extra: str = "") -> str:
    with pytest.raises(SpecError) as info:
        spec_from_text(BASE.format(key=key, values=values, top=top) + extra)
    d = info.value.diagnostics[0]
    return f"{d.location.line}:{d.location.col}: {d.message}"


def test_stack_fields_hold_ids_and_a_ustack_keeps_its_pid_hidden_in_the_key():
    s = spec(top="stacks: {entries: 64}\n")
    (agg,) = s.aggregations
    assert [(k.name, str(k.type)) for k in agg.keys] == \
        [("kstack", "kstack"), ("ustack", "ustack[8]"), ("comm", "char[16]")]
    assert agg.stack_pid and agg.has_stacks
    key = next(st for st in s.structs if st.name == "er_agg_samples")
    assert [(m.name, m.size) for m in key.layout.fields] == \
        [("kstack", 4), ("ustack", 4), ("comm", 16), ("er_stack_pid", 4)]
    assert [(m.name, m.depth, m.entries) for m in s.stacks] == \
        [("er_stacks_8", 8, 64), ("er_stacks_127", 127, 64)]
    assert (s.drops[0].channel, s.drops[0].reason) == ("stacks", STACK_LOSS)


def test_the_program_captures_each_stack_into_the_map_of_its_depth():
    s = spec()
    c = render_c(s)
    assert c == render_c(spec())  # deterministic
    assert 'BPF_TABLE("stacktrace", int, struct er_stack_8, er_stacks_8, 16384);' in c
    assert "struct er_stack_127 { u64 ip[127]; };" in c
    assert "er_key.kstack = er_stack_id(er_stacks_127.get_stackid(ctx, 0), 0);" in c
    assert "er_key.ustack = er_stack_id(er_stacks_8.get_stackid(ctx, BPF_F_USER_STACK), 0);" in c
    assert "er_key.er_stack_pid = er_note_pid((u32)((u32)(er_pid_tgid >> 32)));" in c
    assert "BPF_RINGBUF_OUTPUT(er_stack_pids, 8);" in c
    assert "if (id < 0 && id != -14)\n        er_count_drop(slot);" in c


def test_a_kstack_alone_needs_no_pid():
    s = spec("{k: kstack}", "{k: kstack}")
    assert not s.aggregations[0].stack_pid
    assert "er_stack_pid" not in render_c(s)


@pytest.mark.parametrize("key, values, top, extra, expected", [
    ("{k: u64}", "{k: kstack}", "", "",
     "8:44: 'kstack' is a stack (kernel frames), not a value for field 'k' (u64)"),
    ('{k: "char[16]"}', "{k: ustack}", "", "",
     "8:44: 'ustack' is a stack (user frames), not a value for field 'k' (char[16])"),
    ("{k: kstack}", "{k: ustack}", "", "",
     "8:44: field 'k' is kstack: it takes the value kstack, not 'ustack'"),
    ("{k: kstack}", "{k: comm}", "", "",
     "8:44: field 'k' is kstack: it takes the value kstack, not 'comm'"),
    ('{k: "kstack[0]"}', "{k: kstack}", "", "",
     "3:35: stack depth 0 is out of range (1..127)"),
    ('{k: "ustack[128]"}', "{k: ustack}", "", "",
     "3:35: stack depth 128 is out of range (1..127)"),
    ("{k: kstack}", "{k: kstack}", "", "      - if: 'kstack > 0'\n        then: []\n",
     "9:13: bad condition: 'kstack' is a stack: it only fills an aggregation's key field "
     "declared kstack or kstack[N], it is not a value to compute with"),
    ("{k: kstack}, metric: {}", "{k: kstack}", "", "",
     "3:52: key field 'k' is a stack: a stack is not a metric label"),
    ("{k: kstack}, decode: {k: ksym}", "{k: kstack}", "", "",
     "3:56: key field 'k' is kstack: decoder 'ksym' takes a number"),
    ("{k: kstack}", "{k: kstack}", "structs:\n  ev:\n    - s: kstack\n", "",
     "4:10: a kstack is a field of an aggregation's key, not of a struct or a map"),
])
def test_a_stack_anywhere_else_is_a_located_error(key, values, top, extra, expected):
    assert error(key, values, top, extra) == expected


# ---- what a dump makes of the ids ---------------------------------------------------


class FakeStacks:
    """Kernel.maps for one aggregation and its stack maps."""

    def __init__(self, rows, stacks):
        self.rows = rows
        self.stacks = stacks
        self.maps = self
        self.reads = []

    def map_items(self, m, should_stop=None):
        return iter(self.rows)

    def stack(self, m, sid):
        self.reads.append((m.name, sid))
        return self.stacks.get((m.name, sid))


class Names:
    """Symbols by address; a user frame also says its pid."""

    def frame(self, *args):
        address = args[-1]
        if address == 0xdead:
            return Frame(address)  # unresolved: shown as the address
        pid = f"@{args[0]}" if len(args) == 2 else ""
        return Frame(address, f"f{address:x}{pid}", 4)


def key_bytes(kstack: int, ustack: int, comm: bytes, pid: int) -> bytes:
    return struct.pack("=ii16sI", kstack, ustack, comm.ljust(16, b"\0"), pid)


def slot(count: int) -> list:
    return [bytes(AggSlotC(count, 0, 0, 0))]


def dump_of(rows, stacks):
    s = spec()
    aggs = Aggregations(s, fake_types(s))
    aggs.stacks = StackReader(s, Names(), Names())  # type: ignore[arg-type]
    k, sink = FakeStacks(rows, stacks), Sink()
    aggs.dump(k, sink, "samples")
    return aggs, k, sink.dumps[0]


STACKS = {("er_stacks_127", 1): [0xa1, 0xa2], ("er_stacks_8", 2): [0xb1, 0xdead]}


def test_a_dump_prints_stacks_as_bpftrace_does_innermost_frame_first():
    rows = [(key_bytes(1, 2, b"app", 42), slot(5)),
            (key_bytes(1, -14, b"kworker", 7), slot(2)),  # a kernel thread: no user stack
            (key_bytes(-17, 2, b"app", 42), slot(1))]  # -EEXIST: a lost capture
    _, k, (_, text, records) = dump_of(rows, STACKS)
    assert text == (
        "@samples[\n    [lost stack]\n, \n    fb1@42+4\n    0xdead\n, app]: 1\n"
        "@samples[\n    fa1+4\n    fa2+4\n, , kworker]: 2\n"
        "@samples[\n    fa1+4\n    fa2+4\n, \n    fb1@42+4\n    0xdead\n, app]: 5")
    assert records[-1]["key"] == {"kstack": ["fa1+4", "fa2+4"], "ustack": ["fb1@42+4", "0xdead"],
                                  "comm": "app"}
    assert records[1]["key"]["ustack"] == []
    assert sorted(k.reads) == [("er_stacks_127", 1), ("er_stacks_8", 2)]  # each stack once


def test_folded_lines_add_up_equal_paths_outermost_first():
    rows = [(key_bytes(1, 2, b"app", 42), slot(5)), (key_bytes(1, 2, b"app", 43), slot(3))]
    aggs, k, _ = dump_of(rows, STACKS)
    lines = folded_lines(spec(), aggs, k)
    assert lines == ["app;0xdead;fb1@42;fa2_[k];fa1_[k] 5", "app;0xdead;fb1@43;fa2_[k];fa1_[k] 3"]


def test_a_pid_record_makes_its_process_mappings_read_at_once():
    captured = []

    class User:
        def capture(self, pid):
            captured.append(pid)

    reader = StackReader(spec(), Names(), User())  # type: ignore[arg-type]
    records = b"".join(bytes(8) + pid.to_bytes(4, sys.byteorder) + bytes(4) for pid in (7, 4242))
    reader.on_pids(records, 4, 2)
    assert captured == [7, 4242]


def test_the_file_of_an_exited_process_is_opened_by_path_only_if_it_is_the_same_file(tmp_path):
    f = tmp_path / "lib.so"
    f.write_bytes(b"\x7fELF")
    st = os.stat(f)
    device = (os.major(st.st_dev), os.minor(st.st_dev))
    gone = tmp_path / "proc"  # no /proc/PID left: the process has exited
    same = Mapping(0x1000, 0x2000, 0, str(f), device, st.st_ino)
    opened = open_mapped(12345, same, gone)
    assert opened is not None and opened[1][:2] == (st.st_dev, st.st_ino)
    os.close(opened[0])
    assert open_mapped(12345, replace(same, inode=st.st_ino + 1), gone) is None  # replaced
    assert parse_maps(f"1000-2000 r-xp 00000000 fe:01 {st.st_ino} {f}\n") == \
        [Mapping(0x1000, 0x2000, 0, str(f), (0xfe, 1), st.st_ino)]


def test_clear_and_top_work_on_keys_holding_stacks():
    s = spec_from_text(BASE.format(key=PROFILE_KEY + ", every: 1, clear: true, top: 1",
                                   values=PROFILE_VALUES, top=""))
    aggs = Aggregations(s, fake_types(s))
    aggs.stacks = StackReader(s, Names(), Names())  # type: ignore[arg-type]
    a, b = key_bytes(1, 2, b"a", 42), key_bytes(1, -14, b"b", 43)
    k, sink = FakeStacks([(a, slot(5)), (b, slot(2))], STACKS), Sink()
    aggs.dump(k, sink, "samples")
    k.rows = [(a, slot(6)), (b, slot(9))]  # a gained 1, b 7
    aggs.dump(k, sink, "samples")
    (_, first, _), (_, second, records) = sink.dumps
    assert first.endswith(", a]: 5") and first.count("@samples") == 1
    assert second == "@samples[\n    fa1+4\n    fa2+4\n, , b]: 7"
    assert records[0]["key"]["ustack"] == [] and records[0]["value"] == 7


def test_a_histogram_per_stack_is_drawn_under_its_frames():
    s = spec_from_text(BASE.format(key="{k: kstack}, kind: hist", top="",
                                   values="{k: kstack}, value: arg0").replace(
        "kind: count, ", "").replace("syscalls:sys_enter_getppid", "syscalls:sys_enter_read"))
    aggs = Aggregations(s, fake_types(s))
    aggs.stacks = StackReader(s, Names(), Names())  # type: ignore[arg-type]
    bucket_of_3 = 3  # 2 + floor(log2 3): [2, 4)
    k, sink = FakeStacks([(struct.pack("=i4xQ", 1, bucket_of_3), [(2).to_bytes(8, sys.byteorder)])],
                         STACKS), Sink()
    aggs.dump(k, sink, "samples")
    (_, text, records) = sink.dumps[0]
    assert text == ("@samples[\n    fa1+4\n    fa2+4\n]: \n"
                    f"[2, 4)                 2 |{'@' * 52}|\n")
    assert records[0]["key"] == {"k": ["fa1+4", "fa2+4"]} and records[0]["count"] == 2
