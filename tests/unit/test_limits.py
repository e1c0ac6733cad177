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


def _probe(maps: str, actions: str, structs: str = "") -> str:
    return (f"name: x\n{structs}maps:\n{maps}probes:\n  p:\n    attach: {{tracepoint: "
            f"\"syscalls:sys_enter_unlinkat\"}}\n    do:\n{actions}")


def test_a_lookup_then_a_delete_of_a_large_key_pass(tmp_path):
    # Issue 24: each key lives in its own block, so two 448-byte keys never share the stack.
    path = tmp_path / "spec.yaml"
    path.write_text(_probe("  seen: {type: hash, key: \"char[448]\"}\n",
                           "      - let: {n: {lookup: {map: seen, key: args.pathname}, "
                           "default: 0}}\n"
                           "      - delete: {map: seen, key: args.pathname}\n"))
    check(str(path))


STACK = ("would keep {} bytes of buffers on the 512-byte BPF stack here (keys, values, "
         "records, struct copies and string reads; limit 448)")


def test_a_key_and_value_past_the_stack_are_refused_at_the_store(tmp_path):
    text = _probe("  h: {type: hash, key: \"char[232]\", value: big}\n",
                  "      - store: {map: h, key: args.pathname, value: {b: args.pathname}}\n",
                  "structs:\n  big: [{b: \"char[224]\"}]\n")
    assert _first(tmp_path, text) == "10:9: error: probe 'p' " + STACK.format(456)


def test_a_struct_looked_up_stays_on_the_stack_for_the_actions_after_it(tmp_path):
    text = _probe("  vals: {type: hash, key: u32, value: big}\n"
                  "  seen: {type: hash, key: \"char[200]\"}\n",
                  "      - let: {s: {lookup: {map: vals, key: tid}}}\n"
                  "      - if: \"pid != 0\"\n"
                  "        then:\n"
                  "          - count: {map: seen, key: s.b}\n",
                  "structs:\n  big: [{b: \"char[256]\"}]\n")
    assert _first(tmp_path, text) == "14:13: error: probe 'p' " + STACK.format(456)


def test_a_string_comparison_reads_into_the_stack_too(tmp_path):
    literal = "x" * 300
    text = _probe("  vals: {type: hash, key: u32, value: big}\n",
                  "      - let: {s: {lookup: {map: vals, key: tid}}}\n"
                  f"      - if: 'startswith(args.pathname, \"{literal}\")'\n"
                  "        then: [{delete: {map: vals, key: tid}}]\n",
                  "structs:\n  big: [{b: \"char[200]\"}]\n")
    assert _first(tmp_path, text) == "11:9: error: probe 'p' " + STACK.format(502)
