"""Output: escaping in text, exact JSON, the format registry, and write failures."""

from __future__ import annotations

import io
import json
import struct

import pytest

from runner.codegen.render import render
from runner.errors import UsageError
from runner.output import registry
from runner.output.escape import Text, escape
from runner.output.json import JsonSink
from runner.output.stdout import OutputUnwritable
from runner.output.text import TextSink
from runner.runtime import decode

from .util import spec_from_text

HOSTILE = "a\nEVENT pid=1 c"


@pytest.mark.parametrize("raw, shown", [
    ("bash", "bash"),
    ("é ünïcode ✓", "é ünïcode ✓"),
    (HOSTILE, "a\\nEVENT pid=1 c"),
    ("\x1b[2J\rtab\there", "\\x1b[2J\\rtab\\there"),
    ("back\\slash", "back\\\\slash"),
    ("nul\x00del\x7fc1\x85\x9b", "nul\\x00del\\x7fc1\\x85\\x9b"),
    ("ls\u2028ps\u2029", "ls\\u2028ps\\u2029"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("bad \ufffd utf-8", "bad \ufffd utf-8"),
    # Bidirectional controls: an override shows the rest of the line backwards.
    ("evil\u202egpj.exe", "evil\\u202egpj.exe"),
    ("\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069\u200e\u200f\u061c",
     "\\u202a\\u202b\\u202c\\u202d\\u2066\\u2067\\u2068\\u2069\\u200e\\u200f\\u061c"),
])
def test_escape_makes_every_control_character_visible(raw, shown):
    assert escape(raw) == shown
    assert len(escape(raw).splitlines()) <= 1


def test_a_text_value_formats_escaped_and_stays_exact_in_json():
    t = Text(HOSTILE)
    assert f"{t}" == "{x}".format_map({"x": t}) == "a\\nEVENT pid=1 c"
    assert f"{t:>20}" == "    a\\nEVENT pid=1 c"
    assert f"{t!s}" == str(t) == "a\\nEVENT pid=1 c"
    assert "\n" not in f"{t!r}"
    assert json.loads(json.dumps({"comm": t}, ensure_ascii=False)) == {"comm": HOSTILE}
    assert t == HOSTILE


def test_json_escapes_the_characters_line_readers_take_for_line_ends():
    out = io.StringIO()
    sink = JsonSink(out, io.StringIO())
    value = "a\u2028b\u2029c\x85d"
    sink.event("ring", "", {"name": Text(value), "plain": "x\u2028"})
    sink.flush()
    text = out.getvalue()
    assert "\u2028" not in text and "\u2029" not in text and "\x85" not in text
    assert '"a\\u2028b\\u2029c\\u0085d"' in text
    assert len(text.splitlines()) == 1
    assert json.loads(text)["data"] == {"name": value, "plain": "x\u2028"}


def test_the_registry_finds_each_format_and_refuses_an_unknown_one():
    assert type(registry.sink_for("text", io.StringIO(), io.StringIO())) is TextSink
    assert type(registry.sink_for("json", io.StringIO(), io.StringIO())) is JsonSink
    with pytest.raises(UsageError, match="unknown output format 'yaml'; known: json, text"):
        registry.sink_for("yaml")
    assert registry.FORMATS.names() == ("text", "json")


RING_SPEC = """\
name: t
structs:
  ev_t:
    - pid: s32
    - command: char[16]
maps:
  ring: {type: ringbuf, value: ev_t}
  by_name: {type: hash, key: "char[16]", value: u64}
probes:
  p:
    attach: {tracepoint: "sched:sched_process_exec"}
    do:
      - emit: {to: ring, set: {pid: pid, command: comm}}
"""


def _records(*rows):
    """Ring records as the ring callback sees them: an 8-byte header, then the struct,
    padded to 8 bytes."""
    out = b""
    for pid, command in rows:
        out += b"\0" * 8 + struct.pack("=i16s", pid, command) + b"\0" * 4
    return out


@pytest.mark.parametrize("fmt", ["{pid} {command}", "{command:>20}|", "{command!r}"])
def test_the_batch_path_prints_what_the_record_path_prints(fmt):
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    ev = next(s for s in spec.structs if s.name == "ev_t")
    data = _records((7, HOSTILE.encode()), (8, b"\x1b[31m\xff\\"))
    record = decode.record_decoder(module, ev, padded=False)
    by_record = [fmt.format_map(record.at(data, off)) for off in (8, 40)]
    assert all("\n" not in line and "\x1b" not in line for line in by_record)
    batch = decode.batch_formatter(module, ev, fmt)
    if batch is not None:  # a conversion (!r) leaves the work to the record path
        assert batch(data) == by_record
    if fmt == "{pid} {command}":
        assert by_record == ["7 a\\nEVENT pid=1 c", "8 \\x1b[31m\ufffd\\\\"]


# Raw char[16] fields as the C leaves them (codegen/c_strings.py): a failed read is an empty
# string, then 0xff and the errno; a read of "" may leave anything after its NUL but 0xff.
FAILED_READ = b"\0\xff\x0e"  # EFAULT
NOT_UTF8 = b"/x\xff\xfe"


NESTED_SPEC = """\
name: t
structs:
  inner_t:
    - command: char[16]
  ev_t:
    - pid: s32
    - who: inner_t
    - pair: inner_t[2]
maps:
  ring: {type: ringbuf, value: ev_t}
  by_who: {type: hash, key: inner_t, value: u64}
probes:
  p:
    attach: {tracepoint: "sched:sched_process_exec"}
    do:
      - emit: {to: ring, set: {pid: pid}}
      - count: {map: by_who, key: {command: comm}}
"""


def test_a_failed_read_in_a_nested_struct_or_a_struct_key_is_not_an_empty_string():
    """Structs holding structs were decoded as plain dicts of text: a failed read in them,
    and in a struct key, came out as an empty string."""
    spec = spec_from_text(NESTED_SPEC)
    module = decode.load_types(render(spec).python, spec)
    ev = next(s for s in spec.structs if s.name == "ev_t")
    data = struct.pack("=i16s16s16s", 7, FAILED_READ, b"ok", NOT_UTF8)
    record = decode.record_decoder(module, ev, padded=False).at(data, 0)
    failed = record["who"]["command"]
    assert (str(failed), record["who"]["command_error"]) == ("<read failed: EFAULT>", "EFAULT")
    assert [(str(x["command"]), x.get("command_hex")) for x in record["pair"]] == \
        [("ok", None), ("/x\ufffd\ufffd", NOT_UTF8.hex())]
    key_of = decode.value_decoder(module, next(m for m in spec.maps if m.name == "by_who").key)
    assert str(key_of(FAILED_READ.ljust(16, b"\0"))["command"]) == "<read failed: EFAULT>"


@pytest.mark.parametrize("fmt", ["{pid} [{command}]", "{pid} [{command:>24}]"])
def test_a_failed_read_is_not_an_empty_string_in_either_path(fmt):
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    ev = next(s for s in spec.structs if s.name == "ev_t")
    data = _records((7, FAILED_READ), (8, b"\0\0\x0e"), (9, b"\0x"))
    record = decode.record_decoder(module, ev, padded=False)
    by_record = [fmt.format_map(record.at(data, off)) for off in (8, 40, 72)]
    assert decode.batch_formatter(module, ev, fmt)(data) == by_record
    assert by_record[1:] == [fmt.format_map({"pid": n, "command": ""}) for n in (8, 9)]
    assert by_record[0] == fmt.format_map({"pid": 7, "command": "<read failed: EFAULT>"})


def test_json_has_null_for_a_failed_read_and_the_bytes_of_text_that_is_not_utf8():
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    ev = next(s for s in spec.structs if s.name == "ev_t")
    data = _records((7, FAILED_READ), (8, NOT_UTF8), (9, b""), (10, "é\ufffd".encode()))
    record = decode.record_decoder(module, ev, padded=False)
    out = io.StringIO()
    sink = JsonSink(out, io.StringIO())
    for off in (8, 40, 72, 104):
        sink.event("ring", "", record.at(data, off))
    sink.flush()
    assert [json.loads(ln)["data"] for ln in out.getvalue().splitlines()] == [
        {"pid": 7, "command": None, "command_error": "EFAULT"},
        {"pid": 8, "command": "/x\ufffd\ufffd", "command_hex": "2f78fffe"},
        {"pid": 9, "command": ""},
        {"pid": 10, "command": "é\ufffd"},  # a real U+FFFD is valid UTF-8: no bytes needed
    ]


# 15 bytes of a 16-byte field: the last character cut in two (as the kernel cuts a name).
CUT = "abcdefghijklmné".encode()[:15]


def test_a_full_field_ending_inside_a_character_loses_that_character_on_every_path():
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    ev = next(s for s in spec.structs if s.name == "ev_t")
    data = _records((7, CUT), (8, b"ab\xc3"), (9, CUT[:11] + b"\xff" + CUT[12:]))
    record = decode.record_decoder(module, ev, padded=False)
    fields = [record.at(data, off) for off in (8, 40, 72)]
    assert fields[:2] == [{"pid": 7, "command": "abcdefghijklmn"},
                          # not a full field: bad data, not a cut
                          {"pid": 8, "command": "ab\ufffd", "command_hex": "6162c3"}]
    assert fields[2] == {"pid": 9, "command": "abcdefghijk\ufffdmn",
                         "command_hex": (CUT[:11] + b"\xff" + CUT[12:]).hex()}
    fmt = "{pid} {command}"
    assert decode.batch_formatter(module, ev, fmt)(data) == [fmt.format_map(f) for f in fields]
    key_of = decode.value_decoder(module, next(m for m in spec.maps if m.name == "by_name").key)
    assert key_of(CUT + b"\0") == "abcdefghijklmn"


def test_a_string_map_key_is_text():
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    key_type = next(m for m in spec.maps if m.name == "by_name").key
    key = decode.value_decoder(module, key_type)(HOSTILE.encode() + b"\0")
    assert isinstance(key, Text) and key == HOSTILE
    assert type(decode.value_decoder(module, key_type)(b"bash\0")) is str  # nothing to escape
    assert "{key}: {value}".format_map({"key": key, "value": 1}) == "a\\nEVENT pid=1 c: 1"


def test_a_string_map_key_read_in_vain_is_a_failed_read_not_an_empty_string():
    spec = spec_from_text(RING_SPEC)
    module = decode.load_types(render(spec).python, spec)
    key_of = decode.value_decoder(module, next(m for m in spec.maps if m.name == "by_name").key)
    failed, empty = key_of(FAILED_READ + b"\0" * 13), key_of(b"\0" * 16)
    assert empty == ""
    assert "{key}: {value}".format_map({"key": failed, "value": 2}) == \
        "<read failed: EFAULT>: 2"
    out = io.StringIO()
    sink = JsonSink(out, io.StringIO())
    sink.map_dump("by_name", "", [(failed, 2), (empty, 1)])
    sink.flush()
    assert [e["key"] for e in json.loads(out.getvalue())["entries"]] == [None, ""]


class _Full(io.StringIO):
    def flush(self) -> None:
        raise OSError(28, "No space left on device")


@pytest.mark.parametrize("sink_class", [TextSink, JsonSink])
def test_a_full_disk_is_raised_by_the_next_record_and_the_summary_still_reaches_stderr(
        sink_class):
    err = io.StringIO()
    sink = sink_class(_Full(), err)
    sink.event("ring", "1 x", {"pid": 1})
    sink.flush()  # kept: the runner flushes while it ends, so a raise here could skip the summary
    # The next record raises: it is inside a buffer callback, whose error stops the run.
    with pytest.raises(OutputUnwritable, match="No space left on device") as info:
        sink.event("ring", "2 y", {"pid": 2})
    assert info.value.exit_code == 3
    sink.event("ring", "3 z", {"pid": 3})  # raised once; later records are dropped
    sink.flush()
    sink.summary(1.0, {"ring": {"received": 3, "lost": 0}}, [])
    assert "ebpf-run: summary: ran 1.0s; ring: 3 received; nothing lost" in err.getvalue()


@pytest.mark.parametrize("sink_class", [TextSink, JsonSink])
def test_a_failure_no_record_reported_is_raised_after_the_summary(sink_class):
    err = io.StringIO()
    sink = sink_class(_Full(), err)
    sink.map_dump("counts", "1: 2", [(1, 2)])  # an at-exit dump: the runner is ending
    sink.flush()
    sink.flush()
    with pytest.raises(OutputUnwritable):
        sink.summary(0.5, {"counts": {"dumps": 1, "lost": 0}}, [])
    assert "ebpf-run: summary: ran 0.5s; counts: 1 dump; nothing lost" in err.getvalue()


def test_a_closed_reader_still_propagates_at_once():
    class Closed(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    sink = TextSink(Closed(), io.StringIO())
    sink.event("ring", "1 x", {})
    with pytest.raises(BrokenPipeError):
        sink.flush()


def test_c_code_writing_to_fd_1_cannot_enter_the_record_stream():
    """What libbcc does while compiling: printf through C stdio (flushed whenever) and
    plain writes to descriptor 1. Under private_stdout both go to stderr."""
    import subprocess
    import sys

    from .util import ROOT

    script = (
        "import ctypes, os, sys\n"
        "from runner.output.stdout import private_stdout\n"
        "libc = ctypes.CDLL(None)\n"
        "with private_stdout():\n"
        "    print('record 1')\n"
        "    libc.printf(b'buffered by C stdio\\n')\n"
        "    os.write(1, b'written to fd 1\\n')\n"
        "    print('record 2')\n"
    )
    res = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "record 1\nrecord 2\n"
    assert sorted(res.stderr.splitlines()) == ["buffered by C stdio", "written to fd 1"]


STRING_MAP_SPEC = """\
name: t
maps:
  names: {type: hash, key: "char[16]", value: "char[8]"}
  seen: {type: hash, key: "char[16]", value: u64}
probes:
  p:
    attach: {tracepoint: "sched:sched_process_exec"}
    do:
      - count: {map: seen, key: comm}
"""


def test_a_map_dump_has_the_bytes_of_a_text_key_or_value_that_is_not_utf8():
    """Issue 24: a char[N] map key or value that is not UTF-8 was U+FFFD in JSON with no
    way to get its bytes; events had FIELD_hex, a map dump's entry now has key_hex and
    value_hex."""
    spec = spec_from_text(STRING_MAP_SPEC)
    module = decode.load_types(render(spec).python, spec)
    names = next(m for m in spec.maps if m.name == "names")
    dk, dv = decode.value_decoder(module, names.key), decode.value_decoder(module, names.value)
    rows = [(NOT_UTF8.ljust(16, b"\0"), b"ok".ljust(8, b"\0")),
            (b"ok".ljust(16, b"\0"), b"\xc3(".ljust(8, b"\0")),
            ("é\ufffd".encode().ljust(16, b"\0"), FAILED_READ.ljust(8, b"\0"))]
    out = io.StringIO()
    sink = JsonSink(out, io.StringIO())
    sink.map_dump("names", "", [(dk(k), dv(v)) for k, v in rows])
    sink.flush()
    assert json.loads(out.getvalue())["entries"] == [
        {"key": "/x\ufffd\ufffd", "key_hex": "2f78fffe", "value": "ok"},
        {"key": "ok", "value": "\ufffd(", "value_hex": "c328"},
        {"key": "é\ufffd", "value": None},  # valid UTF-8; a failed read is null
    ]
