"""The language of issue 13, one test per construct: meaning errors with their exact located
text, the C a value becomes, parameters set per run, BTF offsets, typed arguments."""

from __future__ import annotations

import struct

import pytest

from runner.check import params
from runner.check.fields import _option_args
from runner.codegen.render import render_c
from runner.errors import SpecError
from runner.model import expr as e
from runner.support import btf

from .test_errors import assert_first_error
from .util import spec_from_text

HEAD = ("name: x\nstructs:\n  ev: [{a: u32}, {s: 'char[8]'}]\n  kv: [{t: u64}]\n"
        "maps:\n  out: {type: ringbuf, value: ev}\n  h: {type: hash, key: u32, value: kv}\n"
        "  arr: {type: array, key: u32, value: u64, max_entries: 4}\n")
P = HEAD + "probes:\n  p:\n    attach: {syscall: openat}\n    do:\n%s"

# name -> (spec text, first diagnostic "LINE:COL: error: MESSAGE", hint or None)
CASES = {
    'negative_against_unsigned': (
        P % '      - if: "uid == -1"\n        then: []\n',
        "13:21: error: bad condition: 'uid' is a u32, never negative: comparing it with -1 "
        "does not depend on its value",
        None,
    ),
    'signed_mixed_with_u64': (
        P % '      - let: {x: "args.dfd + ktime"}\n',
        "13:28: error: bad value: '+' mixes a signed s32 and an unsigned u64 (C would "
        'read a negative value as a huge one): cast one side',
        None,
    ),
    'division_by_zero': (
        P % '      - let: {x: "ktime / 0"}\n',
        "13:25: error: bad value: '/' by zero",
        None,
    ),
    'shift_out_of_range': (
        P % '      - let: {x: "ktime << 64"}\n',
        '13:25: error: bad value: shift by 64: only 0..63 is defined',
        None,
    ),
    'too_wide_for_field': (
        P % '      - emit: {to: out, set: {a: "ktime - 1"}}\n',
        "13:34: error: 'ktime - 1' is a u64 and does not fit in a u32",
        'cast it if truncation is meant: (u32)(...)',
    ),
    'unknown_argument': (
        P % '      - let: {x: args.flag}\n',
        "13:18: error: bad value: this probe has no argument 'flag' (did you mean 'flags'?)",
        None,
    ),
    'no_arguments_here': (
        HEAD + "probes:\n  p:\n    attach: {kprobe: do_sys_open}\n    do:\n"
        "      - let: {x: args.flags}\n",
        "13:18: error: bad value: this probe has no argument 'flags'; it has: none",
        None,
    ),
    'let_twice': (
        P % '      - let: {x: 1}\n      - let: {x: 2}\n',
        "14:15: error: 'x' is already a name here",
        'choose another name',
    ),
    'let_builtin_name': (
        P % '      - let: {pid: 1}\n',
        "13:15: error: 'pid' is already a name here",
        'choose another name',
    ),
    'struct_lookup_default': (
        P % '      - let: {x: {lookup: {map: h, key: tid}, default: 0}}\n',
        '13:56: error: a struct value has no default: leave `default` out, and an absent '
        'entry stops the probe',
        None,
    ),
    'delete_from_array': (
        P % '      - delete: {map: arr, key: 1}\n',
        "13:23: error: delete needs a hash map; the entries of 'arr' (array) always exist",
        'store 0 instead',
    ),
    'user_string_of_a_string': (
        P % '      - emit: {to: out, set: {s: {user_string: comm}}}\n',
        "13:48: error: user_string reads from an address: 'comm' is a string, not a 64-bit value",
        None,
    ),
    'param_default_out_of_range': (
        'name: x\nparams:\n  pid: {type: u8, default: 300}\nprobes:\n  p:\n    attach: '
        '{syscall: openat}\n    do: []\n',
        '3:28: error: 300 does not fit in u8 (0..255)',
        None,
    ),
    'unknown_param': (
        P % '      - if: "params.pid == 1"\n        then: []\n',
        "13:14: error: bad condition: no parameter 'pid' in params",
        None,
    ),
    'string_against_number': (
        P % '      - if: "pid == \\"cat\\""\n        then: []\n',
        "13:13: error: bad condition: '==' compares a string literal (or a string "
        "parameter) with a string value (comm, a char array, a string argument)",
        None,
    ),
    'startswith_number': (
        P % '      - if: "startswith(pid, \\"c\\")"\n        then: []\n',
        '13:13: error: bad condition: startswith takes a string value and a "literal" (or a '
        'string parameter)',
        None,
    ),
    'retval_at_entry': (
        P % '      - let: {x: retval}\n',
        "13:18: error: 'retval' is not available in a syscall kprobe program",
        'retval works in: kretprobe, syscall exit kretprobe, syscall exit raw, syscall '
        'exit tracepoint',
    ),
    'number_into_string_field': (
        P % ('      - let: {e: {lookup: {map: h, key: tid}}}\n'
             '      - emit: {to: out, set: {s: e.t}}\n'),
        "14:34: error: 'e.t' is a number (u64), not a string",
        'a pointer stored as a number reads with {user_string: ...} or {kernel_string: ...}',
    ),
    'condition_not_a_comparison': (
        P % '      - if: "pid + 1"\n        then: []\n',
        "13:14: error: bad condition: expected a comparison (== != < <= > >=), e.g. 'pid == 42'",
        None,
    ),
    'negate_u64': (
        P % '      - let: {x: "-ktime"}\n',
        "13:19: error: bad value: '-' of a u64 would wrap: cast it to s64 first",
        None,
    ),
}


# The schema's part: shapes of the new keys.
SHAPES = {
    "let_two_names": (
        P % "      - let: {a: 1, b: 2}\n",
        "13:14: error: a mapping breaks maxProperties=1 (in probes.p.do.0.let)",
        None,
    ),
    "store_without_value": (
        P % "      - store: {map: h, key: 1}\n",
        "13:16: error: missing key 'value' (in probes.p.do.0.store)",
        None,
    ),
    "param_of_a_string_type_with_a_number": (
        "name: x\nparams:\n  p: {type: 'char[4]', default: 0}\nprobes:\n  p:\n"
        "    attach: {syscall: openat}\n    do: []\n",
        '3:33: error: the default of a char[4] parameter is a string (in quotes): "0"',
        None,
    ),
    "param_of_no_type": (
        "name: x\nparams:\n  p: {type: 'char[200]', default: ''}\nprobes:\n  p:\n"
        "    attach: {syscall: openat}\n    do: []\n",
        "3:13: error: 'char[200]' is not a parameter type: u8, u16, u32, u64, s8, s16, s32, "
        "s64 or char[N] (a string, N from 2 to 128)",
        None,
    ),
    "param_string_too_long": (
        "name: x\nparams:\n  p: {type: 'char[4]', default: 'bash'}\nprobes:\n  p:\n"
        "    attach: {syscall: openat}\n    do: []\n",
        "3:33: error: 4 bytes, more than char[4] holds (3 and the NUL)",
        None,
    ),
    "param_string_never_equal": (
        "name: x\nparams:\n  c: {type: 'char[4]', default: ''}\n"
        + P.split("\n", 1)[1] % '      - if: \'params.c == "bash"\'\n        then: []\n',
        "15:26: error: bad condition: 'params.c' holds at most 3 bytes: it never equals this "
        "4-byte literal",
        None,
    ),
    "param_string_as_a_number": (
        "name: x\nparams:\n  c: {type: 'char[4]', default: ''}\n"
        + P.split("\n", 1)[1] % '      - if: "params.c + 1 == 2"\n        then: []\n',
        "15:23: error: bad condition: '+' needs a number, not a string",
        None,
    ),
    "two_string_constants": (
        P % '      - if: \'"a" == "b"\'\n        then: []\n',
        "13:18: error: bad condition: '==' compares two constants: compare a string value "
        "(comm, a char array, a string argument) with them",
        None,
    ),
}
CASES.update(SHAPES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_meaning_error(tmp_path, name):
    assert_first_error(tmp_path, name, *CASES[name])


def _c_of(do: str, attach: str = "{syscall: openat}") -> str:
    spec = spec_from_text(HEAD.replace("name: x", "name: x\nparams:\n  lim: {type: s32, "
                                       "default: -5}") + "probes:\n  p:\n    attach: "
                          + attach + "\n    do:\n" + do)
    return render_c(spec)


def test_arithmetic_is_spelled_with_its_64_bit_type_on_both_sides():
    c = _c_of('      - let: {x: "(ktime - 5) / 2"}\n      - let: {y: "(s64)args.dfd * -3"}\n')
    assert "u64 er_v_x = ((u64)(((u64)(bpf_ktime_get_ns()) - (u64)(5LL))) / (u64)(2LL));" in c
    assert "s64 er_v_y = ((s64)((s64)((s32)(er_arg0))) * (s64)(-3LL));" in c


def test_a_right_shift_keeps_its_left_operands_type():
    # uid is a u32: `uid >> 4` fills the u32 field uncast, computed in 64 bits
    c = _c_of('      - emit: {to: out, set: {a: "uid >> 4"}}\n'
              '      - let: {k: "ktime >> 10"}\n      - let: {d: "(s64)args.dfd >> 1"}\n')
    assert "er_ev->a = (u32)(((s64)((u32)er_uid_gid) >> (s64)(4LL)));" in c
    assert "u64 er_v_k = ((u64)(bpf_ktime_get_ns()) >> (u64)(10LL));" in c
    assert "s64 er_v_d = ((s64)((s64)((s32)(er_arg0))) >> (s64)(1LL));" in c


def test_a_left_shift_is_computed_and_typed_in_64_bits(tmp_path):
    # C would drop the bits a u32 << 8 pushes out; here it must fit where it goes
    assert_first_error(tmp_path, "shl", P % '      - emit: {to: out, set: {a: "uid << 8"}}\n',
                       "13:34: error: 'uid << 8' is a s64 and does not fit in a u32",
                       "cast it if truncation is meant: (u32)(...)")


def test_a_signed_and_an_unsigned_32_bit_value_compare_in_s64():
    c = _c_of('      - if: "args.dfd < uid"\n        then: []\n')
    assert "if (((s64)((s32)(er_arg0)) < (s64)((u32)er_uid_gid))) {" in c


def test_an_int_argument_reads_as_its_declared_type_whichever_option_attached():
    c = _c_of('      - if: "args.dfd == -100"\n        then: []\n')
    # kprobe (pt_regs), tracepoint (record) and raw sys_enter (pt_regs) all fill er_arg0.
    assert c.count("if (((s32)(er_arg0) == -100LL)) {") == 3


def test_string_equality_and_prefix_compare_byte_by_byte_within_bounds():
    # Without branches (issue 24): the verifier walks one path, however long the literal.
    barrier = 'asm volatile("" : "+r"(er_d) :: "memory");'
    c = _c_of('      - if: \'comm == "ab" || startswith(args.filename, "/t")\'\n'
              '        then: []\n')
    assert ("({ char er_s[16] = {}; bpf_get_current_comm(er_s, 16); u64 er_d = 0; "
            f"er_d |= ((u8)er_s[0] ^ 97) | ((u8)er_s[1] ^ 98) | (u8)er_s[2]; {barrier} "
            "er_d == 0; })") in c
    assert ("({ char er_s[4] = {}; bpf_probe_read_user_str(er_s, 4, (const void *)(er_arg1)); "
            f"u64 er_d = 0; er_d |= ((u8)er_s[0] ^ 47) | ((u8)er_s[1] ^ 116); {barrier} "
            "er_d == 0; })") in c


def test_a_long_literal_is_compared_8_bytes_at_a_time():
    c = _c_of('      - if: \'args.filename == "0123456789"\'\n        then: []\n')
    barriers = c.count('asm volatile("" : "+r"(er_d) :: "memory");')
    assert barriers == 2 * c.count("u64 er_d = 0;")  # 11 bytes to test: 8, then 3
    assert "er_d |= ((u8)er_s[8] ^ 56) | ((u8)er_s[9] ^ 57) | (u8)er_s[10];" in c


def test_a_string_that_fills_its_field_ends_with_dots_where_a_character_starts():
    c = _c_of("      - emit: {to: out, set: {s: args.filename}}\n")
    s = "(er_ev->s)"
    cont = "(((u8)(er_ev->s)[{}] & 0xc0) == 0x80)"
    assert ("{ long er_n = bpf_probe_read_user_str(er_ev->s, 8, (const void *)(er_arg1)); "
            "if (er_n == 8) { "
            # byte 3 starts a character of 2 or more bytes: it goes, the dots start there
            f"if ((u8){s}[3] >= 0xc0) {{ {s}[3] = 46; {s}[4] = 46; {s}[5] = 46; {s}[6] = 0; }} "
            # bytes 2-3 are the start of a character of 3 or 4 bytes
            f"else if ({cont.format(3)[1:-1]} && (u8){s}[2] >= 0xe0) "
            f"{{ {s}[2] = 46; {s}[3] = 46; {s}[4] = 46; {s}[5] = 0; {s}[6] = 0; }} "
            # bytes 1-3 are the start of a character of 4 bytes
            f"else if ({cont.format(2)[1:-1]} && {cont.format(3)[1:-1]} && (u8){s}[1] >= 0xf0) "
            f"{{ {s}[1] = 46; {s}[2] = 46; {s}[3] = 46; {s}[4] = 0; {s}[5] = 0; {s}[6] = 0; }} "
            f"else {{ {s}[4] = 46; {s}[5] = 46; {s}[6] = 46; }} }} "
            # a failed read: after the empty string, 0xff and the errno
            f"else if (er_n < 0) {{ {s}[1] = (char)0xff; {s}[2] = (char)-er_n; }} "
            f"else if (er_n == 1) {{ {s}[1] = 0; }} }}") in c


def test_a_lookup_without_default_stops_the_probe_and_one_with_default_takes_it():
    c = _c_of("      - let: {a: {lookup: {map: h, key: tid}}}\n"
              "      - let: {b: {lookup: {map: arr, key: 1}, default: 7}}\n")
    assert ("        er_p_a = h.lookup(&er_k_a);\n    }\n    if (!er_p_a)\n"
            "        return 0;  /* no entry: the probe stops here */\n    struct kv er_v_a;\n"
            "    bpf_probe_read_kernel(&er_v_a, sizeof(er_v_a), er_p_a);") in c
    assert "u64 er_v_b = er_p_b ? *er_p_b : 7LL;" in c


def test_syscall_exit_expands_to_three_options_with_the_result_in_each():
    spec = spec_from_text(HEAD + "probes:\n  p:\n    attach: {syscall_exit: openat}\n"
                          "    do: [{let: {r: args.ret}}]\n")
    cands = spec.probes[0].candidates
    assert [(c.kind, c.target) for c in cands] == [
        ("kretprobe", "__x64_sys_openat"), ("tracepoint", "syscalls:sys_exit_openat"),
        ("raw_tracepoint", "sys_exit")]
    assert cands[2].function.filter_nr == 257


def test_syscall_nr_at_a_syscall_exit_is_read_in_each_option():
    spec = spec_from_text(HEAD + "probes:\n  p:\n    attach: {syscall_exit: openat}\n"
                          "    do: [{let: {n: syscall_nr}}]\n")
    c = render_c(spec)
    kret, tp, raw = (c.split(f"int er_p__{v}(")[1].split("\n}\n")[0]
                     for v in ("kretprobe", "tracepoint", "raw"))
    # the kretprobe serves openat alone: its number is a constant
    assert "    s64 er_syscall_nr = 257;\n" in kret
    assert "    s64 er_syscall_nr = ((const struct { u64 common; s32 nr; } *)ctx)->nr;\n" in tp
    assert "    if (er_nr != 257)" in raw and "    s64 er_syscall_nr = er_nr;\n" in raw
    assert "s64 er_v_n = er_syscall_nr;" in kret


def test_params_are_rendered_constants_that_apply_sets():
    spec = spec_from_text(HEAD.replace("name: x", "name: x\nparams:\n  pid: {type: u32, "
                                       "default: 0}") + "probes:\n  p:\n    attach: "
                          "{syscall: openat}\n    do:\n      - if: \"pid == params.pid\"\n"
                          "        then: []\n")
    assert "#define er_param_pid ((u32)0ULL)" in render_c(spec)
    assert "#define er_param_pid ((u32)1234ULL)" in render_c(params.apply(spec, {"pid": "1234"}))
    with pytest.raises(ValueError,
                       match=r"^--set pid=-1: -1 does not fit in u32 \(0..4294967295\)$"):
        params.apply(spec, {"pid": "-1"})
    with pytest.raises(ValueError, match=r"^--set tid: the spec has no parameter 'tid' "
                                         r"\(parameters: pid\)$"):
        params.apply(spec, {"tid": "1"})


def test_a_string_param_is_a_padded_c_literal_that_no_value_can_escape():
    spec = spec_from_text(HEAD.replace("name: x", "name: x\nparams:\n  c: {type: 'char[8]', "
                                       "default: ''}") + "probes:\n  p:\n    attach: "
                          "{syscall: openat}\n    do:\n      - if: 'comm == params.c'\n"
                          "        then: []\n")
    assert '#define er_param_c "\\000\\000\\000\\000\\000\\000\\000\\000"' in render_c(spec)
    c = render_c(params.apply(spec, {"c": '");}\\?\n'}))
    assert '#define er_param_c "\\042);}\\134\\077\\012\\000"  /* params.c (line 3) */' in c
    c = render_c(params.apply(spec, {"c": "é"}))  # UTF-8 bytes, then NULs
    assert '#define er_param_c "\\303\\251\\000\\000\\000\\000\\000\\000"' in c
    with pytest.raises(ValueError, match=r"^--set c=12345678: 8 bytes, more than char\[8\] "
                                         r"holds \(7 and the NUL\)$"):
        params.apply(spec, {"c": "12345678"})
    with pytest.raises(ValueError, match=r"^--set c='\\udcff': not UTF-8 text$"):
        params.apply(spec, {"c": "\udcff"})  # a byte of argv that was not UTF-8


def test_string_param_compares_fold_on_the_literal_bytes():
    c = render_c(spec_from_text(
        HEAD.replace("name: x", "name: x\nparams:\n  c: {type: 'char[3]', default: ab}")
        + "probes:\n  p:\n    attach: {syscall: openat}\n    do:\n"
        "      - if: 'params.c == \"\" || comm != params.c'\n        then: []\n"
        "      - if: 'startswith(comm, params.c)'\n        then: []\n"))
    assert '#define er_param_c "ab\\000"' in c
    assert "((er_param_c[0] == 0)) || (!({ char er_s[16] = {}; bpf_get_current_comm(er_s, 16); " \
        "u64 er_d = 0; er_d |= ((u8)er_s[0] ^ (u8)er_param_c[0]) | (er_param_c[0] ? " \
        "((u8)er_s[1] ^ (u8)er_param_c[1]) : 0) | (er_param_c[1] ? ((u8)er_s[2] ^ " \
        "(u8)er_param_c[2]) : 0);" in c
    assert "er_d |= (er_param_c[0] ? ((u8)er_s[0] ^ (u8)er_param_c[0]) : 0) | (er_param_c[1] " \
        "? ((u8)er_s[1] ^ (u8)er_param_c[1]) : 0) | (er_param_c[2] ? ((u8)er_s[2] ^ " \
        "(u8)er_param_c[2]) : 0);" in c


def test_syscall_arguments_take_their_declared_types():
    args = _option_args("x86_64", "syscall", "openat")
    assert {n: (a.value.scalar, a.decl) for n, a in args.items()} == {
        "dfd": ("s32", "int dfd"), "filename": ("u64", "const char * filename"),
        "flags": ("s32", "int flags"), "mode": ("u16", "umode_t mode")}
    assert args["filename"].value.string == e.PtrStr("user", e.BuiltinRef("arg1"))


def test_tracepoint_fields_read_their_record_at_the_format_offsets():
    args = _option_args("x86_64", "tracepoint", "sched:sched_process_exit")
    assert args["pid"].value.node == e.RecordInt(24, "s32")
    assert args["comm"].value.string == e.RecordChars(8, 16)


# -- BTF ---------------------------------------------------------------------------------------

def _btf(types: bytes, strings: bytes) -> bytes:
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def _type(name_off: int, kind: int, vlen: int, size_or_type: int, kflag: int = 0) -> bytes:
    return struct.pack("<III", name_off, (kflag << 31) | (kind << 24) | vlen, size_or_type)


def test_btf_offsets_follow_pointers_embedded_and_anonymous_members():
    strings = b"\0int\0task\0parent\0tgid\0flags\0"
    INT, TASK, PARENT, TGID, FLAGS = 1, 5, 10, 17, 22
    types = (
        _type(INT, btf.INT, 0, 4) + struct.pack("<I", (1 << 24) | 32)      # 1: int (signed)
        + _type(0, btf.PTR, 0, 4)                                           # 2: struct task *
        + _type(0, btf.UNION, 1, 4) + struct.pack("<III", TGID, 1, 0)       # 3: union { int tgid; }
        + _type(TASK, btf.STRUCT, 3, 24)                                    # 4: struct task
        + struct.pack("<III", PARENT, 2, 0)                                 #    parent at 0
        + struct.pack("<III", 0, 3, 64)                                     #    anonymous at 8
        + struct.pack("<III", FLAGS, 1, (3 << 24) | 128, )                  #    flags:3 at 16
    )
    parsed = btf.parse(_btf(types, strings))
    assert btf.resolve(parsed, "task", ["tgid"]) == btf.Path((8,), 4, True)
    assert btf.resolve(parsed, "task", ["parent", "tgid"]) == btf.Path((0, 8), 4, True)
    assert btf.resolve(parsed, "task", ["parent"]) == btf.Path((0,), 8, False)
    with pytest.raises(btf.BtfError, match=r"^struct task has no member 'nope'$"):
        btf.resolve(parsed, "task", ["nope"])


def test_btf_refuses_bitfields_and_what_is_not_btf():
    strings = b"\0int\0task\0flags\0"
    types = (_type(1, btf.INT, 0, 4) + struct.pack("<I", 32)
             + _type(5, btf.STRUCT, 1, 4, kflag=1) + struct.pack("<III", 10, 1, 3 << 24))
    with pytest.raises(btf.BtfError, match=r"^'flags' is a bitfield"):
        btf.resolve(btf.parse(_btf(types, strings)), "task", ["flags"])
    with pytest.raises(btf.BtfError, match="bad magic"):
        btf.parse(b"\0" * 32)


def test_a_constant_mask_narrows_the_type_so_the_value_fits_uncast():
    c = _c_of('      - emit: {to: out, set: {a: "ktime & 0xffffffff"}}\n')
    assert "er_ev->a = (u32)(((u64)(bpf_ktime_get_ns()) & (u64)(4294967295LL)));" in c
    with pytest.raises(SpecError, match=r"'ktime & 0x1ffffffff' is a u64 and does not fit in a "
                                        r"u32"):
        _c_of('      - emit: {to: out, set: {a: "ktime & 0x1ffffffff"}}\n')
