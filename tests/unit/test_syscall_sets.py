"""A probe on several syscalls: the syntax (a list, a glob, both mixed), the glob's
expansion over the syscall table, the candidates (one raw attachment keeping the numbers
by a switch, then each syscall's tracepoint running one function), the arguments they
share, `syscall_name`, and each error with its located text."""

from __future__ import annotations

import pytest

from runner.check import syscall_sets
from runner.codegen import render
from runner.errors import SpecError
from runner.pipeline import check
from runner.support import tracepoints

from .util import spec_from_text

SHIPPED = tracepoints.shipped_catalog("x86_64")


def _spec(attach: str, do: str = "[{print: hi}]", arch: str = "x86_64"):
    return spec_from_text(f"name: x\nprobes:\n  p:\n    attach: {attach}\n    do: {do}\n",
                          arch=arch)


def _first_error(tmp_path, attach: str, do: str = "[{print: hi}]"):
    path = tmp_path / "x.yaml"
    path.write_text(f"name: x\nprobes:\n  p:\n    attach: {attach}\n    do: {do}\n")
    with pytest.raises(SpecError) as info:
        check(str(path))
    d = info.value.diagnostics[0]
    return f"{d.location.line}:{d.location.col}: error: {d.message}", d.hint, info.value


# -- syntax -------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["[openat, open, creat]", '"stat*"', '"*"',
                                    '[openat, "stat*"]', "[getpid]"])
def test_a_list_or_a_glob_is_a_syscall_target(target):
    for key in ("syscall", "syscall_exit"):
        assert _spec(f"{{{key}: {target}}}").probes[0].candidates


def test_one_name_is_unchanged():
    cands = _spec("{syscall: openat}").probes[0].candidates
    assert [(c.kind, c.target, c.more) for c in cands] == [
        ("kprobe", "openat", ()), ("tracepoint", "syscalls:sys_enter_openat", ()),
        ("raw_tracepoint", "sys_enter", ())]
    assert cands[2].function.filter_nr == 257 and cands[2].function.filter_nrs == ()


@pytest.mark.parametrize("target,expected", [
    ("[]", "4:23: error: a list of 0 breaks minItems=1 (in probes.p.attach.syscall)"),
    ('"open at"', "4:23: error: 'open at' is not allowed here (a syscall name, or a glob "
                  "over them: stat*) (in probes.p.attach.syscall)"),
    ("[openat, Open]", "4:32: error: 'Open' is not allowed here (a syscall name, or a glob "
                       "over them: stat*) (in probes.p.attach.syscall.1)"),
])
def test_a_bad_target_is_refused_by_the_schema(tmp_path, target, expected):
    first, _, _ = _first_error(tmp_path, f"{{syscall: {target}}}")
    assert first == expected


# -- the glob -----------------------------------------------------------------------------

def test_a_glob_matches_spec_names_in_number_order():
    found, problems = syscall_sets.members(SHIPPED, "stat*")
    assert ([s.name for s in found], problems) == (["stat", "statfs", "statx", "statmount"], [])
    assert [s.entry for s in found][:1] == ["newstat"]  # the kernel's entry name
    found, _ = syscall_sets.members(SHIPPED, "exec*")
    assert [(s.name, s.number) for s in found] == [("execve", 59), ("execveat", 322)]


def test_star_is_every_numbered_syscall_with_an_entry_tracepoint():
    found, problems = syscall_sets.members(SHIPPED, "*")
    assert problems == [] and len(found) == 360
    numbers = [s.number for s in found]
    assert numbers == sorted(numbers) and numbers[:3] == [0, 1, 2]
    assert "uselib" not in {s.name for s in found}  # no entry point on x86_64


def test_a_list_keeps_its_order_and_a_glob_overlap_counts_once():
    found, problems = syscall_sets.members(SHIPPED, ["statx", "stat*", "openat"])
    assert [s.name for s in found] == ["statx", "stat", "statfs", "statmount", "openat"]
    assert problems == []


# -- candidates and code ------------------------------------------------------------------

def test_one_raw_attachment_then_each_tracepoint():
    cands = _spec("{syscall: [openat, open, creat]}").probes[0].candidates
    assert [(c.kind, c.target, c.more, c.describe) for c in cands] == [
        ("raw_tracepoint", "sys_enter", (), "raw_tracepoint sys_enter for 3 syscalls"),
        ("tracepoint", "syscalls:sys_enter_openat",
         ("syscalls:sys_enter_open", "syscalls:sys_enter_creat"),
         "tracepoints syscalls:sys_enter_NAME of 3 syscalls")]
    assert cands[0].function.filter_nrs == (2, 85, 257)
    assert cands[1].targets == ("syscalls:sys_enter_openat", "syscalls:sys_enter_open",
                                "syscalls:sys_enter_creat")


def test_exits_too():
    # A list: what a glob matches depends on the kernel the unit tests run on.
    cands = _spec('{syscall_exit: [statx, stat, statfs]}').probes[0].candidates
    assert [(c.kind, c.target, c.more) for c in cands] == [
        ("raw_tracepoint", "sys_exit", ()),
        ("tracepoint", "syscalls:sys_exit_statx",
         ("syscalls:sys_exit_newstat", "syscalls:sys_exit_statfs"))]
    assert cands[0].function.filter_nrs == (4, 137, 332)


def test_the_raw_function_keeps_its_numbers_by_a_switch():
    spec = _spec("{syscall_exit: [openat, creat]}", '[{print: "{syscall_name} {retval}"}]')
    c = render.render_c(spec)
    assert ("    switch (er_nr) {  /* raw sys_exit sees every syscall: keep this probe's 2 */\n"
            "    case 85:\n    case 257:\n        break;\n    default:\n        return 0;\n"
            "    }\n    s64 er_syscall_nr = er_nr;\n") in c
    # The tracepoints' record holds the number too.
    assert "s64 er_syscall_nr = ((const struct { u64 common; s32 nr; } *)ctx)->nr;" in c


def test_syscall_name_is_decoded_in_messages():
    spec = _spec('{syscall: "stat*"}', '[{print: "{syscall_name} ({syscall_nr})"}]')
    assert [(member, dec) for _, member, dec in spec.messages[0].decodes] == \
        [("syscall_name", "syscall")]
    fn = spec.probes[0].candidates[0].function
    assert fn.needs_nr


# -- arguments ----------------------------------------------------------------------------

def test_arguments_shared_by_every_syscall_are_named():
    spec = _spec("{syscall: [stat, lstat]}", '[{if: "args.filename != 0", then: [{print: hi}]}]')
    assert spec.probes[0].candidates[0].function.needs_args == (0,)
    spec = _spec("{syscall_exit: [openat, creat]}", '[{if: "args.ret < 0", then: [{print: hi}]}]')
    assert spec.probes[0].candidates


def test_an_argument_not_shared_is_a_located_error(tmp_path):
    first, hint, _ = _first_error(tmp_path, "{syscall: [openat, open, creat]}",
                                  '[{if: "args.flags == 0", then: [{print: hi}]}]')
    assert first == (
        "5:16: error: bad condition: args.flags is not the same argument in every syscall "
        "of this probe "
        "(openat: argument 2 (int flags); open: argument 1 (int flags); creat: none)")
    assert hint is None


def test_an_argument_at_another_position_is_not_shared(tmp_path):
    first, _, _ = _first_error(tmp_path, '{syscall: "exec*"}',
                               '[{if: "args.filename != 0", then: [{print: hi}]}]')
    assert first == (
        "5:16: error: bad condition: args.filename is not the same argument in every "
        "syscall of this probe "
        "(execve: argument 0 (const char * filename); execveat: argument 1 "
        "(const char * filename))")


def test_an_argument_none_has_is_the_usual_error(tmp_path):
    first, _, _ = _first_error(tmp_path, "{syscall: [stat, lstat]}",
                               '[{if: "args.nope == 0", then: [{print: hi}]}]')
    assert first == ("5:16: error: bad condition: this probe has no argument 'nope'; "
                     "it has: filename, statbuf")


# -- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("target,expected,hint", [
    ("[openat, openx]", "4:32: error: unknown syscall 'openx' on x86_64", "did you mean 'open'?"),
    ("[openat, uselib]", "4:32: error: syscall 'uselib' has no entry point on x86_64: "
                         "the kernel does not implement it", None),
    ("[openat, open, openat]", "4:38: error: syscall 'openat' is listed twice", None),
    ('"nomatch*"', "4:23: error: 'nomatch*' matches no syscall on x86_64", "globs"),
    ('[openat, "zz*"]', "4:32: error: 'zz*' matches no syscall on x86_64", "globs"),
])
def test_each_error_is_located_at_its_item(tmp_path, target, expected, hint):
    first, got_hint, err = _first_error(tmp_path, f"{{syscall: {target}}}")
    assert first == expected
    if hint == "globs":
        assert got_hint.startswith("globs match the syscall names of ")
    else:
        assert got_hint == hint
    line = str(err).splitlines()
    assert line[1] == f"        attach: {{syscall: {target}}}"
    assert line[2].index("^") == int(expected.split(":")[1]) - 1 + 4


def test_every_bad_item_is_reported(tmp_path):
    _, _, err = _first_error(tmp_path, '{syscall: [openx, "zz*", openat, openat]}')
    assert [f"{d.location.col}: {d.message}" for d in err.diagnostics] == [
        "24: unknown syscall 'openx' on x86_64",
        "31: 'zz*' matches no syscall on x86_64",
        "46: syscall 'openat' is listed twice"]


def test_syscall_name_is_not_printed_via_trace_pipe(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text('name: x\nmessages: {via: trace_pipe}\nprobes:\n  p:\n'
                    '    attach: {syscall: [openat, open]}\n'
                    '    do: [{print: "{syscall_name}"}]\n')
    with pytest.raises(SpecError) as info:
        check(str(path))
    d = info.value.diagnostics[0]
    assert d.message == ("syscall_name cannot be printed via trace_pipe: it is shown through "
                         "the decoder 'syscall'")


def test_choose_on_syscall_name_takes_syscall_names():
    spec = spec_from_text(
        "name: x\nprobes:\n  p:\n    attach: {syscall: [openat, creat]}\n    do:\n"
        "      - choose:\n          value: syscall_name\n"
        "          cases: {openat: [{print: a}], creat: [{print: c}]}\n")
    assert spec.probes[0].candidates[0].function.needs_nr


def test_each_tracepoint_of_a_probe_counts_toward_the_kernel_limit(tmp_path):
    probes = "".join(f"  p{i}:\n    attach: {{syscall: [openat, creat]}}\n    do: []\n"
                     for i in range(65))
    path = tmp_path / "x.yaml"
    path.write_text(f"name: x\nprobes:\n{probes}")
    with pytest.raises(SpecError) as info:
        check(str(path))
    assert sorted(d.message for d in info.value.diagnostics) == [
        f"probe 'p64' would be program 65 on tracepoint {tp}; the kernel attaches at most 64 "
        "to one tracepoint (BPF_TRACE_MAX_PROGS)"
        for tp in sorted(["syscalls:sys_enter_openat", "syscalls:sys_enter_creat"])]


# -- globs of tracepoints (the shipped table: arm64 is never this machine) ----------------

def test_a_tracepoint_glob_attaches_one_function_to_each_match():
    cands = _spec('{tracepoint: "sched:sched_process_[ew]*"}', arch="aarch64").probes[0] \
        .candidates
    assert [(c.kind, c.target, c.more, c.describe) for c in cands] == [
        ("tracepoint", "sched:sched_process_exec",
         ("sched:sched_process_exit", "sched:sched_process_wait"),
         "tracepoints sched:sched_process_exec and 2 more")]


def test_fields_every_matched_tracepoint_has_alike_are_named():
    spec = _spec('{tracepoint: "sched:sched_wakeup*"}',
                 '[{if: "args.pid == 1 && args.target_cpu == 0", then: [{print: hi}]}]',
                 arch="aarch64")
    assert spec.probes[0].candidates[0].targets == ("sched:sched_wakeup", "sched:sched_wakeup_new")


def test_a_field_not_shared_by_the_matched_tracepoints_is_a_located_error():
    with pytest.raises(SpecError) as info:
        _spec('{tracepoint: "sched:sched_process_[ew]*"}',
              '[{if: "args.pid == 1", then: [{print: hi}]}]', arch="aarch64")
    d = info.value.diagnostics[0]
    assert (d.location.line, d.location.col, d.message) == (
        5, 16, "bad condition: args.pid is not the same offset in every tracepoint of this "
        "probe (sched:sched_process_exec, sched:sched_process_wait: offset 12 (pid_t pid); "
        "sched:sched_process_exit: offset 24 (pid_t pid))")


@pytest.mark.parametrize("target,message", [
    ("sched:nothing_*", "'sched:nothing_*' matches no tracepoint"),
    ("*:sys_*_getppid", "'*:sys_*_getppid' matches tracepoints of different kinds: "
                        "syscalls:sys_enter_getppid, syscalls:sys_exit_getppid"),
])
def test_a_tracepoint_glob_error_is_located(target, message):
    with pytest.raises(SpecError) as info:
        _spec(f'{{tracepoint: "{target}"}}', arch="aarch64")
    d = info.value.diagnostics[0]
    assert (d.location.line, d.location.col, d.message) == (4, 26, message)
