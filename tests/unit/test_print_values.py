"""`print` of any value (issue 25): the hidden record the checker builds per print from its
placeholders' types, the C that fills it, the runtime's text and JSON for it (keys, decoded
values), and the errors, each at its placeholder."""

from __future__ import annotations

import ctypes
import io
from typing import Any, Dict, List, Tuple

from runner.check.actions.print_ import STRING_SIZE
from runner.codegen import render
from runner.model.types import TypeRef
from runner.output.text import Sink
from runner.runtime.decode import load_types
from runner.runtime.records import Records
from runner.runtime.signals import Stop

from .test_all_errors import EXIT, P, errors
from .util import spec_from_text

OPENS = """\
name: x
params:
  tag: {type: "char[8]", default: "hi"}
probes:
  p:
    attach: {syscall: openat}
    do:
      - print: "{args.filename} {args.flags:open_flags:>10} {params.tag} {ppid} {pid} {args.dfd}"
"""

KILLS = """\
name: k
structs:
  pending: [{target: s32}, {signal: s32}]
maps:
  h: {type: hash, key: u32, value: pending}
probes:
  exit:
    attach: {syscall_exit: kill}
    do:
      - let: {k: {lookup: {map: h, key: tid}}}
      - let: {ms: "ktime / 1000000"}
      - print: "{comm} {k.signal:signal:>8} {k.target} ret={args.ret} {args.ret:errno} {ms}"
"""


def test_a_print_builds_its_record_from_the_placeholders_types():
    spec = spec_from_text(OPENS)
    msg, = spec.messages
    assert msg.struct is not None
    assert [(m.name, str(m.type)) for m in msg.struct.layout.fields] == [
        ("er_id", "u32"), ("er_args_filename", "char[256]"), ("er_args_flags", "s32"),
        ("er_params_tag", "char[8]"), ("er_ppid", "s32"), ("pid", "u32"), ("er_args_dfd", "s32")]
    assert msg.format == ("{er_args_filename} {er_d0:>10} {er_params_tag} {er_ppid} {pid} "
                          "{er_args_dfd}")
    assert msg.keys == (("er_args_filename", "filename"), ("er_args_flags", "flags"),
                        ("er_params_tag", "tag"), ("er_ppid", "ppid"), ("er_args_dfd", "dfd"))
    assert msg.decodes == (("er_d0", "er_args_flags", "open_flags"),)
    assert msg.data_keys == ("filename", "flags", "tag", "ppid", "pid", "dfd", "flags_name")
    c = render.render_c(spec)
    # The string behind the pointer is read from user memory, bounded by its 256 bytes; the
    # parameter's literal copied; the record reserved in the ring buffer, not on the stack.
    assert "struct er_msg1 *er_ev = er_messages.ringbuf_reserve(sizeof(struct er_msg1));" in c
    assert ("{ long er_n = bpf_probe_read_user_str(er_ev->er_args_filename, 256, "
            "(const void *)(er_arg1));") in c
    assert "__builtin_memcpy(er_ev->er_params_tag, er_param_tag, 8);" in c
    assert "er_ev->er_args_dfd = (s32)((s32)(er_arg0));" in c


def test_a_looked_up_value_a_let_and_a_result_are_members_typed_as_they_are():
    spec = spec_from_text(KILLS)
    msg, = spec.messages
    assert msg.struct is not None
    assert [(m.name, str(m.type)) for m in msg.struct.layout.fields] == [
        ("er_id", "u32"), ("comm", "char[16]"), ("er_k_signal", "s32"), ("er_k_target", "s32"),
        ("er_args_ret", "s64"), ("er_ms", "u64")]
    c = render.render_c(spec)
    assert "er_ev->er_k_signal = (s32)(er_v_k.signal);" in c
    assert "er_ev->er_args_ret = (s64)(er_retval);" in c
    assert "er_ev->er_ms = (u64)(er_v_ms);" in c


def test_a_key_taken_by_a_built_in_falls_back_to_the_whole_name():
    spec = spec_from_text(P.replace("openat", "kill") % '      - print: "{pid} {args.pid}"\n')
    assert spec.messages[0].keys == (("er_args_pid", "args.pid"),)
    assert spec.messages[0].data_keys == ("pid", "args.pid")


def test_a_print_of_built_ins_only_keeps_its_record_and_format():
    msg, = spec_from_text(P % '      - print: "{pid:>6} {comm}"\n').messages
    assert msg.format == "{pid:>6} {comm}" and msg.keys == () and msg.decodes == ()


class Got(Sink):
    def __init__(self) -> None:
        super().__init__(io.StringIO(), io.StringIO())
        self.got: List[Tuple[str, Dict[str, Any]]] = []

    def message(self, text: str, fields: Dict[str, Any]) -> None:
        self.got.append((text, fields))


def test_the_runtime_formats_the_record_and_names_its_values_in_json():
    spec = spec_from_text(KILLS)
    types = load_types(render.render_python(spec), spec)
    rec = types.er_msg1()
    rec.er_id, rec.comm, rec.er_k_signal, rec.er_k_target = 1, b"sh", 15, 4321
    rec.er_args_ret, rec.er_ms = -3, 7
    sink = Got()
    records = Records(sink, Stop(), None, lambda: None)
    size = ctypes.sizeof(rec)
    records.ring_messages(spec, types)(bytes(8) + bytes(rec), size, 1)
    assert sink.got == [("sh  SIGTERM 4321 ret=-3 ESRCH 7", {
        "comm": "sh", "signal": 15, "signal_name": "SIGTERM", "target": 4321, "ret": -3,
        "ret_name": "ESRCH", "ms": 7})]


def test_a_failed_string_read_keeps_its_companion_under_the_key():
    spec = spec_from_text(OPENS)
    types = load_types(render.render_python(spec), spec)
    rec = types.er_msg1()
    rec.er_id = 1
    ctypes.memmove(ctypes.addressof(rec) + 4, b"\0\xff\x0e", 3)  # EFAULT, as the C marks it
    rec.er_params_tag, rec.er_ppid, rec.pid, rec.er_args_dfd = b"hi", 1, 2, -100
    sink = Got()
    Records(sink, Stop(), None, lambda: None).ring_messages(spec, types)(
        bytes(8) + bytes(rec), ctypes.sizeof(rec), 1)
    (text, data), = sink.got
    assert text == "<read failed: EFAULT>   O_RDONLY hi 1 2 -100"
    assert data["filename_error"] == "EFAULT" and data["flags_name"] == "O_RDONLY"
    assert data["filename"] is not None and str(data["filename"]) == "<read failed: EFAULT>"


def test_values_a_print_cannot_show_are_reported_at_their_placeholder(tmp_path):
    text = (P.replace("ev: [{a: u32}]", "ev: [{a: u32}, {st: kstack}]")
            .replace("{syscall: openat}", "{syscall: kill}") % (
                '      - let: {e: {lookup: {map: h, key: tid}}}\n'
                '      - print: "{e.st} {comm:signal} {args.sig:ipv6} {args.pid:>2000} {e[a]}"\n'))
    assert errors(tmp_path, text) == [
        "12:17: error: '{e.st}' is a stack (kstack): a print shows numbers and text",
        "  hint: a stack is shown by an aggregation keyed by it (see Stacks)",
        "12:24: error: '{comm:signal}': the value is char[16], decoder 'signal' takes a number",
        "12:38: error: '{args.sig:ipv6}': the value is s32, decoder 'ipv6' takes an unsigned "
        "number of at most 64 bits or u8[16]",
        "12:54: error: '{args.pid:>2000}': a width or precision is at most 1024",
        "12:71: error: '{e[a]}': unknown name 'e'",
        "  hint: 'e' is a struct looked up: print its fields, e.g. {e.a}",
    ]


def test_trace_pipe_prints_numbers_of_any_kind_but_no_text(tmp_path):
    via = "messages: {via: trace_pipe}\n"
    spec = spec_from_text(EXIT % '      - print: "{args.ret} {ppid}"\n' + via)
    assert spec.messages[0].struct is None
    text = render.render_c(spec)
    assert ('bpf_trace_printk("er-%u: %lld %d", er_tag, (s64)(er_retval), (s32)(' in text)
    assert errors(tmp_path, P % '      - print: "{args.filename}"\n' + via)[0].endswith(
        "args.filename (text) cannot be printed via trace_pipe")


def test_a_string_from_memory_takes_256_bytes():
    struct = spec_from_text(OPENS).messages[0].struct
    assert struct is not None and STRING_SIZE == 256
    assert struct.layout.fields[1].type == TypeRef("char", STRING_SIZE)


def test_a_result_printed_at_the_entry_says_where_it_is(tmp_path):
    assert errors(tmp_path, P % '      - print: "fd {args.ret:>4}"\n') == [
        "11:20: error: '{args.ret}': this probe has no argument 'ret': the result is read at "
        "the exit: attach {syscall_exit: openat}, where it is args.ret (or retval)"]
