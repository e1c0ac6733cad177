"""Kernel and compiler limits a spec can reach are refused at check time, located, with the
limit named (runner/check/limits.py), instead of failing when loaded."""

from __future__ import annotations

import pytest

from runner.errors import SpecError
from runner.pipeline import check


def _first(tmp_path, text: str) -> str:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        check(str(path))
    d = info.value.diagnostics[0]
    return f"{d.location.line}:{d.location.col}: error: {d.message}"


PROBE = "probes:\n  p:\n    attach: {tracepoint: \"sched:sched_process_exec\"}\n    do: []\n"


@pytest.mark.parametrize("kind", ["percpu_hash", "percpu_array"])
@pytest.mark.parametrize("value", ["s", "char[16]", "u64[2]"])
def test_a_per_cpu_map_holds_integers_only(tmp_path, kind, value):
    text = (f"name: x\nstructs:\n  s:\n    - a: u64\nmaps:\n  m: {{type: {kind}, key: u32, "
            f"value: \"{value}\", max_entries: 4}}\n" + PROBE)
    col = text.splitlines()[5].index('"' + value) + 1
    assert _first(tmp_path, text) == (
        f"6:{col}: error: a {kind} map's value must be an integer, not {value}: ebpf-run "
        "adds up the values of every CPU")


def test_a_hash_key_past_the_bpf_stack_is_refused(tmp_path):
    text = "name: x\nmaps:\n  m: {type: hash, key: \"char[449]\"}\n" + PROBE
    assert _first(tmp_path, text) == (
        "3:24: error: key char[449] is 449 bytes: a hash key is built on the 512-byte BPF "
        "stack (limit 448)")


def test_a_map_the_kernel_would_not_allocate_is_refused(tmp_path):
    text = ("name: x\nstructs:\n  big:\n    - a: char[65536]\nmaps:\n"
            "  m: {type: array, value: big, max_entries: 16777216}\n" + PROBE)
    assert _first(tmp_path, text) == (
        "6:3: error: map 'm' would take 1048576 MiB (16777216 entries of 65536 bytes); "
        "ebpf-run allows 1024 MiB per map")


def _many_maps(n: int) -> str:
    """A spec whose one probe counts into `n` maps."""
    maps = "".join(f"  m{i}: {{type: hash}}\n" for i in range(n))
    counts = "".join(f"      - count: {{map: m{i}, key: pid}}\n" for i in range(n))
    return (f"name: x\nmaps:\n{maps}probes:\n  p:\n    attach: {{tracepoint: "
            f"\"sched:sched_process_exec\"}}\n    do:\n{counts}")


def test_more_maps_than_one_program_may_use(tmp_path):
    assert _first(tmp_path, _many_maps(62)) == (
        "66:3: error: p uses 62 maps; one BPF program may use 64 (the kernel's MAX_USED_MAPS),"
        " 3 of them ebpf-run's own")


def test_61_maps_in_one_program_pass(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_many_maps(61))
    check(str(path))


def test_more_programs_on_one_tracepoint_than_the_kernel_attaches(tmp_path):
    probes = "".join(f"  p{i}:\n    attach: {{syscall: getppid}}\n    do: []\n"
                     for i in range(65))
    text = f"name: x\nprobes:\n{probes}"
    assert _first(tmp_path, text) == (
        "196:13: error: probe 'p64' would be program 65 on tracepoint "
        "syscalls:sys_enter_getppid; the kernel attaches at most 64 to one tracepoint "
        "(BPF_TRACE_MAX_PROGS)")
