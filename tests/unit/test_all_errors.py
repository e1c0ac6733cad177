"""Every error of a spec in one pass, each at its bad token (issue 25): an action of no
known kind, a bad condition or a bad placeholder hides none of the errors after it, a value
that failed raises no follow-up errors where it is used, and hints name only what was meant."""

from __future__ import annotations

from typing import List

import pytest

from runner.errors import SpecError
from runner.pipeline import check

from .test_errors import assert_first_error

P = ("name: x\nstructs:\n  ev: [{a: u32}]\nmaps:\n  out: {type: ringbuf, value: ev}\n"
     "  h: {type: hash, key: u32, value: ev}\nprobes:\n  p:\n    attach: {syscall: openat}\n"
     "    do:\n%s")
EXIT = P.replace("{syscall: openat}", "{syscall_exit: openat}")
BUILTINS = ("known built-ins: arg0, arg1, arg2, arg3, arg4, arg5, cgroup, comm, cpu, gid, "
            "ktime, pid, retval, syscall_name, syscall_nr, tgid, tid, uid")


def errors(tmp_path, text: str) -> List[str]:
    """Every diagnostic of the spec: 'LINE:COL: error: MESSAGE', then '  hint: ...'."""
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        check(str(path))
    out = []
    for d in info.value.diagnostics:
        out.append(f"{d.location.line}:{d.location.col}: error: {d.message}")
        out += [f"  hint: {d.hint}"] if d.hint else []
    return out


def test_an_unknown_action_hides_no_error_after_it(tmp_path):
    assert errors(tmp_path, P % (
        '      - frob: {x: 1}\n'
        '      - print: "pid {pdi}"\n'
        '      - if: "pid == 1"\n'
        '        then:\n'
        '          - blah: 1\n'
        '          - let: {y: "nope"}\n')) == [
        "11:9: error: unknown action 'frob'",
        "  hint: expected one of: add, aggregate, choose, count, delete, emit, if, let, "
        "print, store, tail_call",
        "12:21: error: '{pdi}': unknown name 'pdi'",
        "  hint: did you mean 'pid'?",
        "15:13: error: unknown action 'blah'",
        "  hint: expected one of: add, aggregate, choose, count, delete, emit, if, let, "
        "print, store, tail_call",
        "16:23: error: bad value: unknown name 'nope'",
    ]


def test_other_schema_errors_are_reported_alone(tmp_path):
    # A shape the checker cannot read (a store without its value) stops at the schema.
    assert errors(tmp_path, P % (
        '      - frob: {x: 1}\n'
        '      - store: {map: h, key: 1}\n'
        '      - print: "{pdi}"\n')) == [
        "11:9: error: unknown action 'frob'",
        "  hint: expected one of: add, aggregate, choose, count, delete, emit, if, let, "
        "print, store, tail_call",
        "12:16: error: missing key 'value' (in probes.p.do.1.store)",
    ]


def test_a_misspelt_let_leaves_its_name_unknown_without_more_errors(tmp_path):
    assert errors(tmp_path, P % (
        '      - lett: {x: ktime}\n'
        '      - if: "x == 1"\n'
        '        then: []\n')) == [
        "11:9: error: unknown action 'lett'",
        "  hint: did you mean 'let'?",
    ]


def test_a_bad_condition_hides_no_error_in_its_branches(tmp_path):
    assert errors(tmp_path, P % (
        '      - if: "nope == 1"\n'
        '        then:\n'
        '          - print: "{bad}"\n'
        '        else:\n'
        '          - emit: {to: out, set: {a: "pid + qq"}}\n')) == [
        "11:14: error: bad condition: unknown name 'nope'",
        "13:21: error: '{bad}': unknown name 'bad'",
        f"  hint: {BUILTINS}; or a let name, args.NAME, params.NAME, task.MEMBER, ppid",
        "15:45: error: bad value: unknown name 'qq'",
    ]


def test_a_let_that_failed_still_names_its_value(tmp_path):
    # One error, where the value is wrong; none where the name is used after it.
    assert errors(tmp_path, P % (
        '      - let: {y: "zz + 1"}\n'
        '      - if: "y == 2"\n'
        '        then:\n'
        '          - let: {z: "y * 2"}\n'
        '      - emit: {to: out, set: {a: y}}\n'
        '      - let: {w: {lookup: {map: nomap, key: tid}}}\n'
        '      - if: "w.a == 1"\n'
        '        then: []\n'
        '      - let: {y: 3}\n')) == [
        "11:19: error: bad value: unknown name 'zz'",
        "16:33: error: unknown map 'nomap'",
        "  hint: known maps: h, out",
        "19:15: error: 'y' is already a name here",
        "  hint: choose another name",
    ]


def test_every_bad_placeholder_of_a_format_is_reported_at_its_brace(tmp_path):
    assert errors(tmp_path, P % (
        '      - print: "{{x}} {pdi} {pid:2000} {} {comm.upper} {tidd}"\n')) == [
        "11:23: error: '{pdi}': unknown name 'pdi'",
        "  hint: did you mean 'pid'?",
        "11:29: error: '{pid:2000}': a width or precision is at most 1024",
        "11:40: error: placeholders must be named, e.g. {pid}",
        "11:43: error: '{comm.upper}' is not a field: a placeholder is a name, then [FIELD] "
        "of a struct or [INDEX] of an array",
        "  hint: e.g. {key[pid]} or {addr[0]}; attributes (.NAME) are not fields",
        "11:56: error: '{tidd}': unknown name 'tidd'",
        "  hint: did you mean 'tid'?",
    ]


def test_hints_name_only_what_was_meant(tmp_path):
    # {args.rett} is a misspelt argument, {e} a struct looked up, {e.aa} a misspelt field:
    # no built-in is what they meant (not 'arg5', not 'pid').
    assert errors(tmp_path, EXIT % (
        '      - let: {e: {lookup: {map: h, key: tid}}}\n'
        '      - print: "{args.rett} {e} {e.aa} {args.ret:signl}"\n'
        '      - if: "args.rett == 1"\n'
        '        then: []\n'
        '      - if: "e.aa == 1 || pidd == 1"\n'
        '        then: []\n'
        '      - if: "pidd == 1"\n'
        '        then: []\n')) == [
        "12:17: error: '{args.rett}': this probe has no argument 'rett'",
        "  hint: did you mean 'ret'?",
        "12:29: error: '{e}': unknown name 'e'",
        "  hint: 'e' is a struct looked up: print its fields, e.g. {e.a}",
        "12:33: error: '{e.aa}': unknown name 'e.aa'",
        "  hint: did you mean 'e.a'?",
        "12:40: error: '{args.ret:signl}': unknown decoder 'signl'",
        "  hint: did you mean 'signal'?",
        "13:14: error: bad condition: this probe has no argument 'rett' (did you mean 'ret'?)",
        "15:14: error: bad condition: unknown name 'e.aa' (did you mean 'e.a'?)",
        "17:14: error: bad condition: unknown name 'pidd' (did you mean 'pid'?)",
    ]


def test_a_result_read_where_there_is_none_says_where_it_is(tmp_path):
    assert errors(tmp_path, P % '      - if: "args.ret == 0"\n        then: []\n') == [
        "11:14: error: bad condition: this probe has no argument 'ret': the result is read at "
        "the exit: attach {syscall_exit: openat}, where it is args.ret (or retval)"]
    at = P.replace("{syscall: openat}", "{kretprobe: vfs_read}")
    assert errors(tmp_path, at % '      - let: {x: "args.ret"}\n') == [
        "11:19: error: bad value: this probe has no argument 'ret': the return value here is "
        "'retval'"]
    at = P.replace("{syscall: openat}", '{tracepoint: "sched:sched_process_exit"}')
    assert errors(tmp_path, at % '      - let: {x: "args.ret"}\n') == [
        "11:19: error: bad value: this probe has no argument 'ret': a result is read at an "
        "exit: a syscall_exit probe (args.ret or retval), a kretprobe or a uretprobe (retval)"]


def test_a_format_says_how_to_show_a_value_that_is_no_field(tmp_path):
    text = (P % "      - emit: {to: out, set: {a: 1}}\n") + (
        'output:\n  - events: out\n    format: "{a} {ppid} {args.ret} {aa}"\n'
        '  - map: h\n    format: "{keys}"\n')
    assert errors(tmp_path, text) == [
        "14:18: error: '{ppid}' names no field of ev",
        "  hint: a format shows the event's fields: to show ppid, give ev a field and set it in "
        "the emit, e.g. set: {ppid: ppid}",
        "14:25: error: '{args.ret}' names no field of ev",
        "  hint: a format shows the event's fields: to show args.ret, give ev a field and set it "
        "in the emit, e.g. set: {ret: args.ret}",
        "14:36: error: '{aa}' names no field of ev",
        "  hint: did you mean 'a'?",
        "16:14: error: '{keys}' names no field of a map entry",
        "  hint: did you mean 'key'?",
    ]


# The caret at the bad token of a condition, in each way YAML writes a one-line scalar; at
# the value's start where the text is not spelt as written (escapes, block scalars).
# name -> (spec text, first diagnostic "LINE:COL: error: MESSAGE", hint or None)
CASES = {
    'condition_plain': (
        P % '      - if: pid == 1 && nope == 2\n        then: []\n',
        "11:25: error: bad condition: unknown name 'nope'",
        None,
    ),
    'condition_single_quoted': (
        P % "      - if: 'pid == 1 && nope == 2'\n        then: []\n",
        "11:26: error: bad condition: unknown name 'nope'",
        None,
    ),
    'condition_double_quoted': (
        P % '      - if: "pid == 1 && nope == 2"\n        then: []\n',
        "11:26: error: bad condition: unknown name 'nope'",
        None,
    ),
    'condition_with_an_escape': (
        P % '      - if: "comm == \\"cat\\" && nope == 2"\n        then: []\n',
        "11:13: error: bad condition: unknown name 'nope'",
        None,
    ),
    'condition_block_scalar': (
        P % '      - if: >-\n          pid == 1 && nope == 2\n        then: []\n',
        "11:13: error: bad condition: unknown name 'nope'",
        None,
    ),
    'placeholder_single_quoted': (
        P % "      - print: 'it''s {pdi}'\n",
        "11:16: error: '{pdi}': unknown name 'pdi'",
        "did you mean 'pid'?",
    ),
    'placeholder_plain': (
        P % "      - print: pid={pid} x={pdi}\n",
        "11:28: error: '{pdi}': unknown name 'pdi'",
        "did you mean 'pid'?",
    ),
    'value_operator': (
        P % '      - let: {x: "ktime - args.dfd"}\n',
        "11:25: error: bad value: '-' mixes a signed s32 and an unsigned u64 (C would read "
        "a negative value as a huge one): cast one side",
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_located_error(tmp_path, name):
    assert_first_error(tmp_path, name, *CASES[name])


def test_a_bad_choose_value_hides_no_error_in_its_cases(tmp_path):
    assert errors(tmp_path, P % (
        '      - choose:\n'
        '          value: pdi\n'
        '          cases:\n'
        '            1: [{print: "{tidd}"}]\n'
        '          default: [{let: {x: nope}}]\n')) == [
        "12:18: error: expected a number or an integer built-in for a s64, got 'pdi'",
        "  hint: did you mean 'pid'?",
        "14:26: error: '{tidd}': unknown name 'tidd'",
        "  hint: did you mean 'tid'?",
        "15:31: error: bad value: unknown name 'nope'",
    ]


def test_a_misspelt_action_of_several_keys_names_nothing(tmp_path):
    assert errors(tmp_path, P % (
        '      - cuont: {map: h, key: tid}\n'
        '      - let: {key: 1}\n'
        '      - if: "map == 1"\n'
        '        then: []\n')) == [
        "11:9: error: unknown action 'cuont'",
        "  hint: did you mean 'count'?",
        "13:14: error: bad condition: unknown name 'map'",
    ]
