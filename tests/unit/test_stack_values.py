"""A kernel stack stored in a hash map's value (a struct field filled by `kstack`), looked
up later and copied into an aggregation's key field of the same kind and depth: the model,
the rendered C, and the located errors for every other use (user stacks stored with their
pid: test_event_stacks.py)."""

from __future__ import annotations

import pytest

from runner.codegen.render import render_c
from runner.errors import SpecError

from .util import spec_from_text

BASE = """\
name: t
structs:
  blocked:
    - stack: {field}
    - since: u64
maps:
  at: {{type: hash, key: u32, value: {value}, max_entries: 64}}
aggregations:
  blocked_us: {{kind: sum, key: {{k: {key}}}}}
probes:
  out:
    attach: {{tracepoint: "sched:sched_switch"}}
    do:
      - store: {{map: at, key: args.prev_pid, value: {{stack: kstack, since: ktime}}}}
      - let: {{b: {{lookup: {{map: at, key: args.next_pid}}}}}}
      - aggregate: {{map: blocked_us, key: {{k: {use}}}, value: "ktime - b.since"}}
{extra}"""


def text(field="kstack", key="kstack", use="b.stack", value="blocked", extra=""):
    return BASE.format(field=field, key=key, use=use, value=value, extra=extra)


def error(**kw) -> str:
    with pytest.raises(SpecError) as info:
        spec_from_text(text(**kw))
    d = info.value.diagnostics[0]
    return f"{d.location.line}:{d.location.col}: {d.message}"


def test_a_stored_kstack_is_an_id_in_the_struct_and_fills_the_key_by_copy():
    s = spec_from_text(text())
    blocked = next(st for st in s.structs if st.name == "blocked")
    assert [(m.name, str(m.type), m.size) for m in blocked.layout.fields] == \
        [("stack", "kstack", 4), ("since", "u64", 8)]
    assert [m.depth for m in s.stacks] == [127]
    c = render_c(s)
    assert c == render_c(spec_from_text(text()))  # deterministic
    assert ".stack = er_stack_id(er_stacks_127.get_stackid(ctx, 0), 0);" in c
    assert "er_key.k = er_v_b.stack;" in c
    assert c.count(".get_stackid(") == 1  # the key copies the stored id: no capture at switch-in


def test_the_depth_travels_with_the_type():
    s = spec_from_text(text(field='"kstack[16]"', key='"kstack[16]"'))
    assert [m.name for m in s.stacks] == ["er_stacks_16"]
    assert "er_key.k = er_v_b.stack;" in render_c(s)


@pytest.mark.parametrize("kw, expected", [
    ({"key": '"kstack[16]"'},
     "16:47: field 'k' is kstack[16] but 'b.stack' is kstack: a stack id indexes the stack "
     "map of its own kind and depth"),
    ({"key": "ustack"},
     "16:47: field 'k' is ustack but 'b.stack' is kstack: a stack id indexes the stack "
     "map of its own kind and depth"),
    ({"key": "u64"},
     "16:47: 'b.stack' is a stack (kstack), not a number for a u64"),
    ({"use": "b.since"},
     "16:47: field 'k' is kstack: it takes the value kstack, not 'b.since'"),
    ({"field": "ustack"},
     "14:61: field 'stack' is ustack: it takes the value ustack, not 'kstack'"),
    ({"value": "kstack"},
     "7:37: a kstack is a field of an aggregation's key or of a struct, not a map's key or "
     "value"),
])
def test_a_stored_stack_used_otherwise_is_a_located_error(kw, expected):
    assert error(**kw) == expected


def test_let_does_not_name_a_stored_stack():
    with pytest.raises(SpecError) as info:
        spec_from_text(text().replace("      - aggregate:",
                                      "      - let: {x: b.stack}\n      - aggregate:"))
    d = info.value.diagnostics[0]
    assert (d.message, d.hint) == (
        "'b.stack' is not a number: let names numbers and looked-up values",
        "a stack goes straight into an aggregation's key field declared kstack")


def test_a_struct_with_a_stack_is_no_map_key_or_nested_struct():
    key = text().replace("aggregations:", "  other: {type: hash, key: blocked, value: u64, "
                         "max_entries: 4}\naggregations:")
    with pytest.raises(SpecError) as info:
        spec_from_text(key)
    assert info.value.diagnostics[0].message.startswith(
        "struct 'blocked' holds a stack (field 'stack'): it cannot be a map's key")
    nested = text().replace("maps:", "  outer:\n    - inner: blocked\nmaps:")
    with pytest.raises(SpecError) as info:
        spec_from_text(nested)
    assert info.value.diagnostics[0].message.startswith(
        "struct 'outer' contains struct 'blocked', which holds a stack")

