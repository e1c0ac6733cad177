"""Struct layout: the model's numbers, clang's and ctypes' agree."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runner.check import build
from runner.codegen import render
from runner.model.types import lay_out, parse_type
from runner.runtime import decode
from runner.spec import loader, schema

from .util import ROOT, spec_from_text


def _offsets(struct):
    return {m.name: (m.offset, m.size, m.padding) for m in struct.members}


def test_hello_buffer_data_t_is_36_bytes():
    spec = build.build(loader.load_file(ROOT / "specs" / "hello-buffer.yaml"))
    data_t = next(s for s in spec.structs if s.name == "data_t")
    assert data_t.layout.size == 36
    assert _offsets(data_t) == {"pid": (0, 4, False), "uid": (4, 4, False),
                                "command": (8, 16, False), "message": (24, 12, False)}
    c = render.render_c(spec)
    assert '_Static_assert(sizeof(struct data_t) == 36' in c
    assert "_Static_assert(__builtin_offsetof(struct data_t, message) == 24" in c
    mod = decode.load_types(render.render_python(spec), spec)
    assert ctypes.sizeof(mod.data_t) == 36 and mod.data_t.message.offset == 24


def test_padding_is_explicit_on_both_sides():
    fields = tuple((n, parse_type(t), "") for n, t in
                   (("a", "u8"), ("b", "u64"), ("c", "u16"), ("d", "char[3]")))
    layout = lay_out(fields, {})
    assert layout.size == 24
    assert [(m.name, m.offset, m.size, m.padding) for m in layout.members] == [
        ("a", 0, 1, False), ("_pad0", 1, 7, True), ("b", 8, 8, False),
        ("c", 16, 2, False), ("d", 18, 3, False), ("_pad1", 21, 3, True)]
    spec = spec_from_text(
        "name: pad\nstructs:\n  s:\n    - a: u8\n    - b: u64\n    - c: u16\n    - d: char[3]\n"
        "maps:\n  out: {type: ringbuf, value: s}\n"
        "probes:\n  p:\n    attach: {tracepoint: \"sched:sched_process_exec\"}\n"
        "    do:\n      - emit: {to: out, set: {a: 1}}\n")
    c = render.render_c(spec)
    assert "u8 _pad0[7]; /* offset 1, size 7: padding before 'b' */" in c
    assert "u8 _pad1[3]; /* offset 21, size 3: tail padding */" in c
    py = render.render_python(spec)
    assert "('_pad0', er_ctypes.c_uint8 * 7),  # offset 1, size 7" in py
    mod = decode.load_types(py, spec)
    assert ctypes.sizeof(mod.s) == 24


def test_ctypes_check_fails_loudly_on_disagreement():
    spec = spec_from_text("name: x\nstructs:\n  s:\n    - a: u8\n    - b: u32\n"
                          "probes:\n  p:\n    attach: {raw_tracepoint: sys_enter}\n    do: []\n")
    py = render.render_python(spec).replace("'b': 4", "'b': 2")
    with pytest.raises(AssertionError, match=r"s\.b is at 4 in ctypes, 2 in the model"):
        decode.load_types(py, spec)


# -- property: random structs compile under clang with every assert, and match ctypes ---

SCALAR = st.sampled_from(["u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64"])
FIELD_TYPE = st.one_of(SCALAR, st.integers(1, 20).map(lambda n: f"char[{n}]"),
                       st.tuples(SCALAR, st.integers(1, 5)).map(lambda t: f"{t[0]}[{t[1]}]"))


@st.composite
def struct_specs(draw):
    n_structs = draw(st.integers(1, 3))
    lines = ["name: prop", "structs:"]
    for i in range(n_structs):
        lines.append(f"  s{i}:")
        for j in range(draw(st.integers(1, 6))):
            t = draw(FIELD_TYPE)
            if i and draw(st.booleans()):
                t = f"s{draw(st.integers(0, i - 1))}"  # nest an earlier struct
            lines.append(f"    - f{j}: {t}")
    lines += ["probes:", "  p:", "    attach: {raw_tracepoint: sys_enter}", "    do: []"]
    return "\n".join(lines) + "\n"


CLANG = shutil.which("clang")


@pytest.mark.skipif(CLANG is None, reason="clang is installed by ./scripts/setup")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(struct_specs())
def test_random_structs_agree_in_clang_and_ctypes(text):
    spec = spec_from_text(text)
    c = render.render_structs_c(spec)
    res = subprocess.run([CLANG, "-target", "bpf", "-fsyntax-only", "-x", "c", "-"],
                         input=c, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr + c
    mod = decode.load_types(render.render_python(spec), spec)
    for s in spec.structs:
        cls = getattr(mod, s.name)
        assert ctypes.sizeof(cls) == s.layout.size
        for m in s.members:
            assert getattr(cls, m.name).offset == m.offset


@pytest.mark.skipif(CLANG is None, reason="clang is installed by ./scripts/setup")
def test_clang_rejects_a_wrong_model():
    """The asserts can fail: a tampered offset stops the compile, naming struct and field."""
    spec = spec_from_text("name: x\nstructs:\n  s:\n    - a: u8\n    - b: u32\n"
                          "probes:\n  p:\n    attach: {raw_tracepoint: sys_enter}\n    do: []\n")
    c = render.render_structs_c(spec).replace("s, b) == 4", "s, b) == 1")
    res = subprocess.run([CLANG, "-target", "bpf", "-fsyntax-only", "-x", "c", "-"],
                         input=c, capture_output=True, text=True)
    assert res.returncode != 0
    assert "static_assert failed" in res.stderr
    assert "ebpf-run layout: s.b must be at offset 4" in res.stderr  # the struct and field


def test_schema_and_layout_for_every_field_kind():
    doc = loader.load_text("name: k\nstructs:\n  inner:\n    - x: u16\n  outer:\n"
                           "    - a: u8\n    - i: inner\n    - arr: u32[3]\n    - t: char[5]\n"
                           "probes:\n  p:\n    attach: {raw_tracepoint: sys_enter}\n    do: []\n",
                           "k.yaml")
    schema.check(doc)
    spec = build.build(doc)
    outer = next(s for s in spec.structs if s.name == "outer")
    assert [(m.name, m.offset) for m in outer.members] == [
        ("a", 0), ("_pad0", 1), ("i", 2), ("arr", 4), ("t", 16), ("_pad1", 21)]
    assert outer.layout.size == 24
