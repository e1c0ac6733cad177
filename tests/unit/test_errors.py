"""One test per kind of spec error: the exact message and its line:column."""

from __future__ import annotations

import pytest

from runner.errors import SpecError
from runner.pipeline import check

# name -> (spec text, expected first diagnostic: "LINE:COL: error: MESSAGE", hint or None)
CASES = {
    'yaml_syntax': (
        'name: x\nprobes: {a: [1, 2}\n',
        "2:18: error: invalid YAML: expected ',' or ']', but got '}'",
        None,
    ),
    'duplicate_key': (
        'name: x\nname: y\n',
        "2:1: error: duplicate key 'name' (first defined at line 1)",
        None,
    ),
    'empty': (
        '',
        "1:1: error: the spec is empty; it must be a mapping with at least 'name'",
        None,
    ),
    'not_mapping': (
        '- name: x\n',
        '1:1: error: the top level of a spec must be a mapping (key: value)',
        None,
    ),
    'unknown_key': (
        'name: x\nprobe:\n  p: {attach: {syscall: execve}, do: []}\n',
        "2:1: error: unknown key 'probe'",
        "did you mean 'probes'?",
    ),
    'hex_companion_hidden': (  # JSON's name_hex (the bytes of a non-UTF-8 name) would be lost
        'name: x\nstructs:\n  s:\n    - name: char[16]\n    - name_hex: u64\n',
        "5:7: error: field 'name_hex' would hide the bytes JSON gives 'name' (char[N]) when "
        "they are not UTF-8",
        'rename it',
    ),
    'unknown_type': (
        'name: x\nstructs:\n  s:\n    - a: u23\n',
        "4:10: error: unknown type 'u23'",
        "did you mean 'u32'?",
    ),
    'pointer': (
        'name: x\nstructs:\n  s:\n    - a: char *\n',
        "4:10: error: pointer type 'char *' is not supported: a pointer means nothing in user space; copy the data into a char[N] or integer field instead",
        None,
    ),
    'literal_too_long': (
        'name: x\nstructs:\n  s:\n    - m: char[4]\nmaps:\n  out: {type: ringbuf, value: s}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - emit: {to: out, set: {m: Hello}}\n',
        '11:34: error: literal of 5 bytes does not fit in char[4] (room for 3 plus the NUL)',
        None,
    ),
    'type_does_not_fit': (
        'name: x\nstructs:\n  s:\n    - t: u32\nmaps:\n  out: {type: ringbuf, value: s}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - emit: {to: out, set: {t: ktime}}\n',
        "11:34: error: 'ktime' is a u64 and does not fit in a u32",
        'use a u64 (or wider) field',
    ),
    'emit_not_buffer': (
        'name: x\nmaps:\n  counts: {type: hash}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - emit: {to: counts}\n',
        "8:20: error: map 'counts' is a hash, not a perf_event_array or ringbuf",
        None,
    ),
    'unknown_map': (
        'name: x\nmaps:\n  counts: {type: hash}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - count: {map: cuonts, key: uid}\n',
        "8:22: error: unknown map 'cuonts'",
        "did you mean 'counts'?",
    ),
    'c_keyword': (
        'name: x\nmaps:\n  switch: {type: hash}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do: []\n',
        "3:3: error: map name 'switch' is a C or Python keyword",
        'choose another name',
    ),
    'missing_tail_target': (
        'name: x\nmaps:\n  t: {type: prog_array, max_entries: 8}\nprobes:\n  p:\n    attach: {raw_tracepoint: sys_enter}\n    do:\n      - tail_call: {map: t, index: syscall_nr}\nprograms:\n  a:\n    do: []\ntail_calls:\n  t:\n    default: a\n    entries:\n      1: b\n',
        "16:10: error: unknown program 'b'",
        'known programs: a',
    ),
    'print_placeholder': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - print: "pid {pdi}"\n',
        "6:21: error: '{pdi}': unknown name 'pdi'",
        "did you mean 'pid'?",
    ),
    'event_placeholder': (
        'name: x\nstructs:\n  s:\n    - pid: u32\nmaps:\n  out: {type: ringbuf, value: s}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - emit: {to: out, set: {pid: pid}}\noutput:\n  - events: out\n    format: "{pid} {uid}"\n',
        "14:20: error: '{uid}' names no field of s",
        "a format shows the event's fields: to show uid, give s a field and set it in the emit, "
        "e.g. set: {uid: uid}",
    ),
    'unknown_syscall': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: exceve}\n    do: []\n',
        "4:23: error: unknown syscall 'exceve' on x86_64",
        "did you mean 'execve'?",
    ),
    'duplicate_field': (
        'name: x\nstructs:\n  s:\n    - a: u8\n    - a: u16\n',
        "5:7: error: duplicate field 'a' in struct 's'",
        None,
    ),
    'python_tag': (
        'name: !!python/object/apply:os.system ["true"]\n',
        "1:7: error: YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed: a spec is plain data",
        None,
    ),
    'syscall_nr_outside_syscall': (
        'name: x\nprobes:\n  p:\n    attach: {tracepoint: "sched:sched_switch"}\n    do:\n      - print: "{syscall_nr}"\n',
        "6:16: error: 'syscall_nr' is not available in a tracepoint program",
        'syscall_nr works in: syscall exit kretprobe, syscall exit raw, syscall exit '
        'tracepoint, syscall kprobe, syscall raw, syscall tracepoint',
    ),
    'syscall_nr_in_a_program_of_a_syscall_exit': (
        'name: x\nmaps:\n  t: {type: prog_array, max_entries: 8}\nprobes:\n  p:\n    attach: {syscall_exit: read}\n    do:\n      - tail_call: {map: t, index: 0}\nprograms:\n  a:\n    do:\n      - print: "{syscall_nr}"\ntail_calls:\n  t:\n    entries:\n      0: a\n',
        "12:16: error: 'syscall_nr' is not available in a program tail-called from a syscall_exit probe",
        'at the kretprobe on a syscall\'s function only the probe knows the number: store it in a map before the tail_call',
    ),
    'bad_condition': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - if: "uid = 0"\n        then: []\n',
        "6:18: error: bad condition: unexpected character '='",
        None,
    ),
    'map_named_like_a_libc_builtin': (
        'name: x\nmaps:\n  log2: {type: hash}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do: []\n',
        "3:3: error: map name 'log2' already means something in the C that BCC compiles (a macro, library function or declaration of its headers)",
        'choose another name',
    ),
    'field_named_like_a_kernel_macro': (
        'name: x\nstructs:\n  s:\n    - linux: u32\n',
        "4:7: error: field name 'linux' already means something in the C that BCC compiles (a macro, library function or declaration of its headers)",
        'choose another name',
    ),
    'struct_named_like_a_bcc_macro': (
        'name: x\nstructs:\n  noinline:\n    - a: u32\n',
        "3:3: error: struct name 'noinline' already means something in the C that BCC compiles (a macro, library function or declaration of its headers)",
        'choose another name',
    ),
    'field_named_like_ctypes_own': (
        'name: x\nstructs:\n  s:\n    - _fields_: u32\n',
        "4:7: error: field name '_fields_' is a name ctypes structures use themselves",
        'choose another name',
    ),
    'field_shadowing_a_ctypes_method': (
        'name: x\nstructs:\n  s:\n    - from_buffer_copy: u32\n',
        "4:7: error: field name 'from_buffer_copy' is a name ctypes structures use themselves",
        'choose another name',
    ),
    'struct_python_special': (
        'name: x\nstructs:\n  __dict__:\n    - a: u32\n',
        "3:3: error: struct name '__dict__' is a Python special name",
        'choose another name',
    ),
    'map_named_like_a_helper': (
        'name: x\nmaps:\n  bpf_stats: {type: hash}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do: []\n',
        "3:3: error: map name 'bpf_stats' uses the prefix of BPF helpers",
        'choose another name',
    ),
    'arg_past_the_syscall_arguments': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: getppid}\n    do:\n      - print: "{arg0}"\n',
        "6:16: error: 'arg0' is past the arguments of getppid, which takes none",
        None,
    ),
    'arg_past_the_tracepoint_arguments': (
        'name: x\nprobes:\n  p:\n    attach: {tracepoint: "syscalls:sys_enter_read"}\n    do:\n      - if: "arg3 > 0"\n        then: []\n',
        "6:13: error: 'arg3' is past the arguments of read, which takes 3: fd, buf, count",
        'arg0..arg2 are its arguments',
    ),
    'unsigned_compared_with_negative': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: read}\n    do:\n      - if: "ktime > -1"\n        then: []\n',
        "6:22: error: bad condition: 'ktime' is a u64, never negative: comparing it with -1 does not depend on its value (and C would compare them as unsigned numbers)",
        None,
    ),
    'negative_compared_with_unsigned': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: read}\n    do:\n      - if: "-5 <= pid"\n        then: []\n',
        "6:14: error: bad condition: 'pid' is a u32, never negative: comparing it with -5 does not depend on its value",
        None,
    ),
    'add_zero': (
        'name: x\nmaps:\n  m: {type: hash, key: u32, value: u32}\nprobes:\n  p:\n    attach: {syscall: read}\n    do:\n      - add: {map: m, key: pid, value: 0}\n',
        "8:40: error: adding 0 changes nothing",
        'leave the action out',
    ),
    'format_width_too_large': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: read}\n    do:\n      - print: "{pid:500000000}"\n',
        "6:17: error: '{pid:500000000}': a width or precision is at most 1024",
        None,
    ),
    'format_attribute_of_a_string': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: read}\n    do:\n      - print: "{pid} {comm.upper}"\n',
        "6:23: error: '{comm.upper}' is not a field: a placeholder is a name, then [FIELD] of a struct or [INDEX] of an array",
        'e.g. {key[pid]} or {addr[0]}; attributes (.NAME) are not fields',
    ),
    'format_attribute_of_an_event_field': (
        'name: x\nstructs:\n  s:\n    - comm: char[16]\nmaps:\n  out: {type: ringbuf, value: s}\nprobes:\n  p:\n    attach: {syscall: read}\n    do:\n      - emit: {to: out, set: {comm: comm}}\noutput:\n  - {events: out, format: "{comm:<16} {comm.__class__}"}\n',
        "13:39: error: '{comm.__class__}' is not a field: a placeholder is a name, then [FIELD] of a struct or [INDEX] of an array",
        'e.g. {key[pid]} or {addr[0]}; attributes (.NAME) are not fields',
    ),
    'format_attribute_after_an_index': (
        'name: x\nmaps:\n  m: {type: hash, key: u32, value: "u64[2]"}\noutput:\n  - {map: m, format: "{key} {value[0].real}"}\n',
        "5:29: error: '{value[0].real}' is not a field: a placeholder is a name, then [FIELD] of a struct or [INDEX] of an array",
        'e.g. {key[pid]} or {addr[0]}; attributes (.NAME) are not fields',
    ),
    # Issue 24: a bounded string never matches a literal it cannot hold (before: it
    # validated, then the verifier refused the program with E2BIG, exit 3).
    'comm_never_equals_a_long_literal': (
        'name: x\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - if: \'comm == "0123456789abcdef"\'\n        then: []\n',
        "6:22: error: bad condition: 'comm' is a char[16]: it holds at most 15 bytes, so it can never equal this 16-byte literal",
        None,
    ),
    'prev_comm_never_starts_with_a_long_literal': (
        'name: x\nprobes:\n  p:\n    attach: {tracepoint: "sched:sched_switch"}\n    do:\n      - if: \'pid > 0 && startswith(args.prev_comm, "0123456789abcdefgh")\'\n        then: []\n',
        "6:52: error: bad condition: the string value is a char[16]: it holds at most 15 bytes, so it can never start with this 18-byte literal",
        None,
    ),
    # Issue 24: a mapping inside an action that names no kind of value was an "unknown
    # action" (elapsed's struct key gave "unknown action 'dev'").
    'unknown_value_kind': (
        'name: x\nstructs:\n  s: [{a: u32}]\nmaps:\n  out: {type: ringbuf, value: s}\nprobes:\n  p:\n    attach: {syscall: execve}\n    do:\n      - emit: {to: out, set: {a: {literl: x}}}\n',
        "10:35: error: unknown value kind 'literl'",
        "did you mean 'literal'?",
    ),
    # Found by tests/specgen.py (seed 5): the same fentry twice in one probe validated and
    # did not compile (two KFUNC_PROBE of one function).
    'fentry_twice_in_one_probe': (
        'name: x\nprobes:\n  p:\n    attach: [{fentry: do_nanosleep}, {fentry: do_nanosleep}]\n    do: []\n',
        "4:39: error: fentry do_nanosleep is already used by an earlier option of this probe",
        "BCC names a trampoline program after its function, so one per function",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_error_kind(tmp_path, name):
    assert_first_error(tmp_path, name, *CASES[name])


def assert_first_error(tmp_path, name: str, text: str, expected: str, hint) -> None:
    """The spec's first diagnostic is `expected` ("LINE:COL: error: MESSAGE") with `hint`,
    printed with its file, source line and a caret under the column."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        check(str(path))
    first = info.value.diagnostics[0]
    assert f"{first.location.line}:{first.location.col}: error: {first.message}" == expected
    assert first.hint == hint
    rendered = str(info.value).splitlines()
    assert rendered[0] == f"{path}:{expected}"
    if text.strip():  # the source line and a caret under the column
        line, col = first.location.line, first.location.col
        assert rendered[1] == "    " + text.splitlines()[line - 1]
        assert rendered[2] == "    " + " " * (col - 1) + "^"


def test_non_utf8_is_located(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_bytes(b'name: x\ndescription: "\xff"\n')
    with pytest.raises(SpecError) as info:
        check(str(path))
    assert str(info.value) == f"{path}:2:15: error: the spec is not valid UTF-8"


def test_lone_surrogate_is_located(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text('name: x\ndescription: "a\\udc80"\n')
    with pytest.raises(SpecError) as info:
        check(str(path))
    assert str(info.value).splitlines()[0] == (
        f"{path}:2:14: error: the text contains a lone surrogate (\\ud800-\\udfff), "
        "which is not a character")


def test_all_errors_are_collected(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(
        "name: x\n"
        "maps:\n"
        "  counts: {type: hash}\n"
        "probes:\n"
        "  p:\n"
        "    attach: {syscall: exceve}\n"
        "    do:\n"
        "      - count: {map: cuonts, key: uid}\n"
        "      - print: \"{pdi}\"\n")
    with pytest.raises(SpecError) as info:
        check(str(path))
    where = [(d.location.line, d.location.col) for d in info.value.diagnostics]
    assert where == [(6, 23), (8, 22), (9, 17)]


def test_unknown_keys_everywhere_are_refused(tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text("name: x\nprobes:\n  p:\n    attach: {syscall: execve}\n    do: []\n"
                    "    optionl: true\n")
    with pytest.raises(SpecError) as info:
        check(str(path))
    d = info.value.diagnostics[0]
    assert (d.location.line, d.location.col, d.hint) == (6, 5, "did you mean 'optional'?")


def test_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("name: x\n" + "\n".join(lines) + "\n")
    with pytest.raises(SpecError) as info:
        check(str(path))
    assert "alias bomb" in str(info.value)



def test_a_file_name_a_terminal_would_obey_is_shown_escaped(tmp_path):
    """Whoever named the file chose its name (a review printed an OSC title sequence and
    a colour through an error's location): controls and bidi overrides become escapes."""
    from runner.errors import format_error

    path = tmp_path / "evil\x1b]0;pwned\x07\u202ex.yaml"
    path.write_text("name: [\n")
    with pytest.raises(SpecError) as info:
        check(str(path))
    text = format_error(info.value)
    assert "evil\\x1b]0;pwned\\x07\\u202ex.yaml:2:1: error: invalid YAML" in text
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
