"""Tracepoint formats: parsing tracefs `format` texts, the shipped table, the catalog.

The format texts below are copied from this project's 6.18 x86_64 machine
(/sys/kernel/tracing/events/CATEGORY/NAME/format), print fmt lines included.
"""

from __future__ import annotations

import io
import json
import struct

import pytest

from runner.cli.list import list_probes
from runner.support import tracepoints
from runner.support.syscalls import Syscall
from runner.support.tracefs import (
    ArrayType,
    DataLocType,
    Field,
    FormatError,
    IntType,
    OpaqueType,
    PointerType,
    integer,
    parse_field,
    parse_format,
)

from .util import ROOT

# The header every record starts with, the same in each format file below.
COMMON = (
    "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
    "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
    "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
    "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
    "\n"
)

SCHED_SWITCH = (
    "name: sched_switch\n"
    "ID: 372\n"
    "format:\n"
    + COMMON +
    "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n"
    "\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n"
    "\tfield:int prev_prio;\toffset:28;\tsize:4;\tsigned:1;\n"
    "\tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;\n"
    "\tfield:char next_comm[16];\toffset:40;\tsize:16;\tsigned:0;\n"
    "\tfield:pid_t next_pid;\toffset:56;\tsize:4;\tsigned:1;\n"
    "\tfield:int next_prio;\toffset:60;\tsize:4;\tsigned:1;\n"
    "\n"
    "print fmt: \"prev_comm=%s prev_pid=%d prev_prio=%d prev_state=%s%s ==> next_comm=%s next"
    "_pid=%d next_prio=%d\", REC->prev_comm, REC->prev_pid, REC->prev_prio, (REC->prev_state "
    "& ((((0x00000000 | 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00"
    "000020 | 0x00000040) + 1) << 1) - 1)) ? __print_flags(REC->prev_state & ((((0x00000000 |"
    " 0x00000001 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x0000004"
    "0) + 1) << 1) - 1), \"|\", { 0x00000001, \"S\" }, { 0x00000002, \"D\" }, { 0x00000004, "
    "\"T\" }, { 0x00000008, \"t\" }, { 0x00000010, \"X\" }, { 0x00000020, \"Z\" }, { 0x000000"
    "40, \"P\" }, { 0x00000080, \"I\" }) : \"R\", REC->prev_state & (((0x00000000 | 0x0000000"
    "1 | 0x00000002 | 0x00000004 | 0x00000008 | 0x00000010 | 0x00000020 | 0x00000040) + 1) <<"
    " 1) ? \"+\" : \"\", REC->next_comm, REC->next_pid, REC->next_prio\n"
)

SCHED_PROCESS_EXEC = (
    "name: sched_process_exec\n"
    "ID: 365\n"
    "format:\n"
    + COMMON +
    "\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;\n"
    "\tfield:pid_t pid;\toffset:12;\tsize:4;\tsigned:1;\n"
    "\tfield:pid_t old_pid;\toffset:16;\tsize:4;\tsigned:1;\n"
    "\n"
    "print fmt: \"filename=%s pid=%d old_pid=%d\", __get_str(filename), REC->pid, REC->old_pi"
    "d\n"
)

SYS_ENTER_OPENAT = (
    "name: sys_enter_openat\n"
    "ID: 782\n"
    "format:\n"
    + COMMON +
    "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
    "\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;\n"
    "\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n"
    "\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;\n"
    "\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;\n"
    "\n"
    "print fmt: \"dfd: 0x%08lx, filename: 0x%08lx, flags: 0x%08lx, mode: 0x%08lx\", ((unsigne"
    "d long)(REC->dfd)), ((unsigned long)(REC->filename)), ((unsigned long)(REC->flags)), ((u"
    "nsigned long)(REC->mode))\n"
)

SYS_EXIT_OPENAT = (
    "name: sys_exit_openat\n"
    "ID: 781\n"
    "format:\n"
    + COMMON +
    "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
    "\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;\n"
    "\n"
    "print fmt: \"0x%lx\", REC->ret\n"
)

INET_SOCK_SET_STATE = (
    "name: inet_sock_set_state\n"
    "ID: 2287\n"
    "format:\n"
    + COMMON +
    "\tfield:const void * skaddr;\toffset:8;\tsize:8;\tsigned:0;\n"
    "\tfield:int oldstate;\toffset:16;\tsize:4;\tsigned:1;\n"
    "\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n"
    "\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n"
    "\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n"
    "\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n"
    "\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n"
    "\tfield:__u8 saddr[4];\toffset:32;\tsize:4;\tsigned:0;\n"
    "\tfield:__u8 daddr[4];\toffset:36;\tsize:4;\tsigned:0;\n"
    "\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n"
    "\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n"
    "\n"
    "print fmt: \"family=%s protocol=%s sport=%hu dport=%hu saddr=%pI4 daddr=%pI4 saddrv6=%pI"
    "6c daddrv6=%pI6c oldstate=%s newstate=%s\", __print_symbolic(REC->family, { 2, \"AF_INET"
    "\" }, { 10, \"AF_INET6\" }), __print_symbolic(REC->protocol, { 6, \"IPPROTO_TCP\" }, { 1"
    "32, \"IPPROTO_SCTP\" }, { 262, \"IPPROTO_MPTCP\" }), REC->sport, REC->dport, REC->saddr,"
    " REC->daddr, REC->saddr_v6, REC->daddr_v6, __print_symbolic(REC->oldstate, { 1, \"TCP_ES"
    "TABLISHED\" }, { 2, \"TCP_SYN_SENT\" }, { 3, \"TCP_SYN_RECV\" }, { 4, \"TCP_FIN_WAIT1\" "
    "}, { 5, \"TCP_FIN_WAIT2\" }, { 6, \"TCP_TIME_WAIT\" }, { 7, \"TCP_CLOSE\" }, { 8, \"TCP_"
    "CLOSE_WAIT\" }, { 9, \"TCP_LAST_ACK\" }, { 10, \"TCP_LISTEN\" }, { 11, \"TCP_CLOSING\" }"
    ", { 12, \"TCP_NEW_SYN_RECV\" }), __print_symbolic(REC->newstate, { 1, \"TCP_ESTABLISHED"
    "\" }, { 2, \"TCP_SYN_SENT\" }, { 3, \"TCP_SYN_RECV\" }, { 4, \"TCP_FIN_WAIT1\" }, { 5, "
    "\"TCP_FIN_WAIT2\" }, { 6, \"TCP_TIME_WAIT\" }, { 7, \"TCP_CLOSE\" }, { 8, \"TCP_CLOSE_WA"
    "IT\" }, { 9, \"TCP_LAST_ACK\" }, { 10, \"TCP_LISTEN\" }, { 11, \"TCP_CLOSING\" }, { 12, "
    "\"TCP_NEW_SYN_RECV\" })\n"
)

SYS_ENTER_GETPPID = (
    "name: sys_enter_getppid\n"
    "ID: 305\n"
    "format:\n"
    + COMMON +
    "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
    "\n"
    "print fmt: \"\"\n"
)


def test_sched_switch_fields_arrays_and_signed_integers():
    fmt = parse_format(SCHED_SWITCH, "sched")
    assert (fmt.category, fmt.name, fmt.id, fmt.full_name) == ("sched", "sched_switch", 372,
                                                               "sched:sched_switch")
    assert fmt.fields == (
        Field("prev_comm", "char", 8, 16, False, ArrayType(IntType("char", 1, False), 16), False),
        Field("prev_pid", "pid_t", 24, 4, True, IntType("pid_t", 4, True), False),
        Field("prev_prio", "int", 28, 4, True, IntType("int", 4, True), False),
        Field("prev_state", "long", 32, 8, True, IntType("long", 8, True), False),
        Field("next_comm", "char", 40, 16, False, ArrayType(IntType("char", 1, False), 16), False),
        Field("next_pid", "pid_t", 56, 4, True, IntType("pid_t", 4, True), False),
        Field("next_prio", "int", 60, 4, True, IntType("int", 4, True), False),
    )
    assert [f.decl for f in fmt.fields][:2] == ["char prev_comm[16]", "pid_t prev_pid"]


def test_common_fields_are_kept_apart_and_flagged():
    fmt = parse_format(SCHED_SWITCH, "sched")
    assert [(f.name, f.offset, f.size, f.common) for f in fmt.common] == [
        ("common_type", 0, 2, True), ("common_flags", 2, 1, True),
        ("common_preempt_count", 3, 1, True), ("common_pid", 4, 4, True)]
    assert fmt.common[3].type == IntType("int", 4, True)
    assert fmt.field("common_pid") is None
    assert fmt.field("next_pid") == fmt.fields[5]


def test_sched_process_exec_has_a_data_loc_string():
    fmt = parse_format(SCHED_PROCESS_EXEC, "sched")
    filename = fmt.fields[0]
    assert filename == Field("filename", "__data_loc char[]", 8, 4, False,
                             DataLocType("char", relative=False), False)
    assert filename.type.is_string
    assert filename.decl == "__data_loc char[] filename"
    assert [(f.name, f.offset, f.type) for f in fmt.fields[1:]] == [
        ("pid", 12, IntType("pid_t", 4, True)), ("old_pid", 16, IntType("pid_t", 4, True))]


def test_sys_enter_openat_arguments_take_their_declared_width_and_sign():
    # Each argument sits in an 8-byte slot marked signed:0; `int dfd` is still an int, so
    # AT_FDCWD reads as -100. `umode_t` is an unsigned short.
    fmt = parse_format(SYS_ENTER_OPENAT, "syscalls")
    assert fmt.fields == (
        Field("__syscall_nr", "int", 8, 4, True, IntType("int", 4, True), False),
        Field("dfd", "int", 16, 8, False, IntType("int", 4, True), False),
        Field("filename", "const char *", 24, 8, False, PointerType("const char *", True),
              False),
        Field("flags", "int", 32, 8, False, IntType("int", 4, True), False),
        Field("mode", "umode_t", 40, 8, False, IntType("umode_t", 2, False), False),
    )
    assert [f.name for f in fmt.syscall_args] == ["dfd", "filename", "flags", "mode"]


def test_sys_exit_openat_ret_is_a_signed_long():
    fmt = parse_format(SYS_EXIT_OPENAT, "syscalls")
    assert fmt.syscall_args == (Field("ret", "long", 16, 8, True, IntType("long", 8, True),
                                      False),)


def test_sys_enter_getppid_has_no_arguments():
    fmt = parse_format(SYS_ENTER_GETPPID, "syscalls")
    assert [f.name for f in fmt.fields] == ["__syscall_nr"]
    assert fmt.syscall_args == ()


def test_inet_sock_set_state_kernel_pointer_and_byte_arrays():
    fmt = parse_format(INET_SOCK_SET_STATE, "sock")
    assert [(f.decl, f.offset, f.size) for f in fmt.fields] == [
        ("const void * skaddr", 8, 8), ("int oldstate", 16, 4), ("int newstate", 20, 4),
        ("__u16 sport", 24, 2), ("__u16 dport", 26, 2), ("__u16 family", 28, 2),
        ("__u16 protocol", 30, 2), ("__u8 saddr[4]", 32, 4), ("__u8 daddr[4]", 36, 4),
        ("__u8 saddr_v6[16]", 40, 16), ("__u8 daddr_v6[16]", 56, 16)]
    assert fmt.fields[0].type == PointerType("const void *", user=False)  # not a syscall
    assert fmt.fields[3].type == IntType("__u16", 2, False)
    assert fmt.fields[9].type == ArrayType(IntType("__u8", 1, False), 16)


@pytest.mark.parametrize(("line", "kind"), [
    ("field:__rel_loc u8[] buf;\toffset:8;\tsize:4;\tsigned:0;", DataLocType("u8", True)),
    ("field:__data_loc u64[] ips;\toffset:8;\tsize:4;\tsigned:0;", DataLocType("u64", False)),
    ("field:unsigned long ips[0];\toffset:8;\tsize:0;\tsigned:0;",
     ArrayType(IntType("unsigned long", 8, False), 0)),
    ("field:struct foo bar;\toffset:8;\tsize:24;\tsigned:0;", OpaqueType("struct foo")),
    ("field:struct foo bars[2];\toffset:8;\tsize:48;\tsigned:0;", OpaqueType("struct foo[2]")),
    ("field:const char *const * argv;\toffset:8;\tsize:8;\tsigned:0;",
     PointerType("const char *const *", True)),
    ("field:xfs_ino_t ino;\toffset:8;\tsize:8;\tsigned:0;", IntType("xfs_ino_t", 8, False)),
    ("field:enum landlock_rule_type rule_type;\toffset:16;\tsize:8;\tsigned:0;",
     IntType("enum landlock_rule_type", 4, False)),
    ("field:const clockid_t which_clock;\toffset:16;\tsize:8;\tsigned:0;",
     IntType("const clockid_t", 4, True)),
    ("field:char c;\toffset:8;\tsize:1;\tsigned:1;", IntType("char", 1, True)),  # 6.1 x86
    ("field:int old;\toffset:8;\tsize:4;", IntType("int", 4, True)),  # no signed: column
])
def test_field_kinds(line, kind):
    assert parse_field("\t" + line, "syscalls").type == kind


def test_a_line_that_is_not_a_field_is_refused_with_its_line_number():
    with pytest.raises(FormatError, match=r"^line 4: not a field line: 'field:int;'$"):
        parse_format("name: x\nID: 1\nformat:\n\tfield:int;\n", "x")
    with pytest.raises(FormatError, match="no 'name:' line"):
        parse_format("format:\n", "x")


def test_integer_types():
    assert integer("unsigned int", 8, False) == IntType("unsigned int", 4, False)
    assert integer("long", 8, False) == IntType("long", 8, True)
    assert integer("struct stat", 144, False) is None
    assert integer("u8 something odd", 3, False) is None


FORMATS = [parse_format(text, cat) for text, cat in (
    (SCHED_SWITCH, "sched"), (SCHED_PROCESS_EXEC, "sched"), (SYS_ENTER_OPENAT, "syscalls"),
    (SYS_EXIT_OPENAT, "syscalls"), (INET_SOCK_SET_STATE, "sock"),
    (SYS_ENTER_GETPPID, "syscalls"))]


def test_shipped_table_round_trip_keeps_every_field():
    text = tracepoints.write_table(FORMATS, "test header")
    assert text.splitlines()[:8] == [
        "# test header", "common", "\tunsigned short common_type\t0\t2\t0",
        "\tunsigned char common_flags\t2\t1\t0", "\tunsigned char common_preempt_count\t3\t1\t0",
        "\tint common_pid\t4\t4\t1", "sched:sched_process_exec",
        "\t__data_loc char[] filename\t8\t4\t0"]
    back = tracepoints.read_table(text)
    assert sorted(back) == sorted(f.full_name for f in FORMATS)
    for fmt in FORMATS:
        assert back[fmt.full_name].fields == fmt.fields
        assert back[fmt.full_name].common == fmt.common
        assert back[fmt.full_name].id is None
    assert tracepoints.write_table(reversed(FORMATS), "test header") == text  # sorted


def test_the_shipped_table_is_sorted_bounded_and_has_what_specs_need():
    path = ROOT / "runner" / "data" / "tracepoints-x86_64.txt"
    text = path.read_text()
    assert len(text.encode()) < 128 * 1024
    formats = tracepoints.read_table(text)
    names = [line for line in text.splitlines() if line and line[0] not in "#\t"]
    assert names[1:] == sorted(names[1:]) and names[0] == "common"
    assert [f.decl for f in formats["syscalls:sys_enter_openat"].fields] == [
        "int __syscall_nr", "int dfd", "const char * filename", "int flags", "umode_t mode"]
    assert formats["syscalls:sys_enter_newstat"].syscall_args[0].name == "filename"
    assert formats["syscalls:sys_enter_mseal"].syscall_args[0].decl == "unsigned long start"
    for name in ("sched:sched_switch", "sched:sched_process_exec", "sched:sched_process_exit",
                 "sock:inet_sock_set_state", "raw_syscalls:sys_enter", "signal:signal_generate",
                 "task:task_newtask", "tcp:tcp_retransmit_skb", "block:block_rq_issue",
                 "block:block_rq_complete", "skb:kfree_skb", "irq:softirq_entry"):
        assert name in formats, name
    assert all(n.split(":")[0] in {"syscalls", "raw_syscalls", "sched", "signal", "task", "tcp",
                                   "sock", "block", "skb", "irq"} for n in formats)


def test_the_shipped_catalog_for_aarch64_keeps_only_its_syscalls():
    x86 = tracepoints.shipped_catalog("x86_64")
    arm = tracepoints.shipped_catalog("aarch64")
    assert not x86.live and x86.kprobes is None
    assert "syscalls:sys_enter_open" in x86.names  # x86_64 has open(2), arm64 only openat
    assert "syscalls:sys_enter_open" not in arm.names
    assert "syscalls:sys_enter_openat" in arm.names
    assert "sched:sched_switch" in arm.names
    assert arm.source.startswith("the shipped table (runner/data, generated on x86_64, "
                                 "syscalls of aarch64)")
    assert "sched_switch" in x86.raw_names and "sys_enter" in x86.raw_names
    assert "sys_enter_openat" not in x86.raw_names


def test_the_catalog_resolves_syscall_names():
    cat = tracepoints.shipped_catalog("x86_64")
    assert cat.syscall("newfstat") == Syscall("fstat", 5, "newfstat")
    assert cat.syscall("mseal") == Syscall("mseal", 462, "mseal")
    assert cat.has("syscalls:sys_enter_newfstat") and not cat.has("syscalls:sys_enter_fstat")


def test_an_unreadable_tracefs_falls_back_to_the_shipped_table(tmp_path):
    cat = tracepoints.open_catalog("x86_64", root=str(tmp_path / "none"))
    assert not cat.live
    assert cat.source == f"the shipped table (runner/data): tracefs at {tmp_path}/none " \
                         "is not readable"


def test_a_live_catalog_reads_formats_from_its_root(tmp_path, monkeypatch):
    monkeypatch.setattr(tracepoints, "btf_raw_tracepoints", lambda: frozenset())
    monkeypatch.setattr(tracepoints.syscalls, "host_arch", lambda: "x86_64")
    for text, cat in ((SYS_ENTER_OPENAT, "syscalls"), (SCHED_SWITCH, "sched")):
        d = tmp_path / "events" / cat / text.split("\n")[0].split(": ")[1]
        d.mkdir(parents=True)
        (d / "format").write_text(text)
    cat = tracepoints.open_catalog("x86_64", root=str(tmp_path))
    assert cat.live and cat.source == f"tracefs at {tmp_path}" and cat.kprobes is False
    assert cat.names == ("sched:sched_switch", "syscalls:sys_enter_openat")
    assert cat.raw_names == ("sched_switch",)  # without BTF: the real tracepoints
    assert cat.format("syscalls:sys_enter_openat").id == 782
    assert cat.format("syscalls:sys_enter_nope") is None


def test_btf_strings_give_raw_tracepoint_names():
    strings = b"\0int\0btf_trace_sched_switch\0btf_trace_\0btf_trace_sys_enter\0"
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 0, 0, len(strings))
    assert tracepoints.btf_strings_with_prefix(header + strings, b"btf_trace_") == [
        "sched_switch", "sys_enter"]
    assert tracepoints.btf_strings_with_prefix(b"\0" * 30, b"btf_trace_") == []


def run_list(*args, **kw):
    out, err = io.StringIO(), io.StringIO()
    code = list_probes(*args, catalog=tracepoints.shipped_catalog("x86_64", "test"), out=out,
                       err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_list_verbose_from_the_shipped_table():
    code, out, err = run_list("tracepoint:syscalls:sys_enter_openat", True)
    assert code == 0
    assert err == "ebpf-run: list: using the shipped table (runner/data): test\n"
    assert out == ("tracepoint:syscalls:sys_enter_openat\n    int __syscall_nr\n    int dfd\n"
                   "    const char * filename\n    int flags\n    umode_t mode\n")


def test_list_a_renamed_syscall_shows_its_tracepoint_and_arguments():
    code, out, _ = run_list("syscall:fstat", True)
    assert code == 0
    assert out == ("syscall:fstat\n    attach: kprobe __x64_sys_newfstat (if the kernel has "
                   "kprobes), tracepoint "
                   "syscalls:sys_enter_newfstat, raw_tracepoint sys_enter (nr 5)\n"
                   "    unsigned int fd\n    struct stat * statbuf\n")


def test_list_glob_without_a_kind_and_no_match():
    code, out, _ = run_list("sched_process_e*")
    assert out == ("raw_tracepoint:sched_process_exec\nraw_tracepoint:sched_process_exit\n")
    code, out, err = run_list("syscall:nosuch")
    assert (code, out) == (1, "")
    assert err.endswith("ebpf-run: list: no probe matches 'syscall:nosuch'\n")


def test_list_json_lines_are_typed():
    code, out, _ = run_list("syscall:openat", True, True)
    assert code == 0
    assert json.loads(out) == {
        "type": "probe", "probe": "syscall:openat", "kind": "syscall", "name": "openat",
        "number": 257,
        "attach": [
            {"method": "kprobe", "target": "__x64_sys_openat", "filter_nr": None,
             "unsure": True},
            {"method": "tracepoint", "target": "syscalls:sys_enter_openat", "filter_nr": None,
             "unsure": False},
            {"method": "raw_tracepoint", "target": "sys_enter", "filter_nr": 257,
             "unsure": False}],
        "fields": [
            {"name": "dfd", "type": "int", "offset": 16, "size": 8, "kind": "integer",
             "value_size": 4, "signed": True},
            {"name": "filename", "type": "const char *", "offset": 24, "size": 8,
             "kind": "pointer", "user": True},
            {"name": "flags", "type": "int", "offset": 32, "size": 8, "kind": "integer",
             "value_size": 4, "signed": True},
            {"name": "mode", "type": "umode_t", "offset": 40, "size": 8, "kind": "integer",
             "value_size": 2, "signed": False}]}
    _, out, _ = run_list("tracepoint:sched:sched_process_exec", True, True)
    assert json.loads(out)["fields"][0] == {
        "name": "filename", "type": "__data_loc char[]", "offset": 8, "size": 4,
        "kind": "data_loc", "element": "char", "relative": False, "string": True}
    _, out, _ = run_list("tracepoint:sched:sched_switch", True, True)
    assert json.loads(out)["fields"][0] == {
        "name": "prev_comm", "type": "char", "offset": 8, "size": 16, "kind": "array",
        "element": "char", "element_size": 1, "count": 16, "signed": False}
