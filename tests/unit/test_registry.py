"""Completeness: every kind in every registry has all its parts, and the registries, the
schema and docs/spec.md's tables name the same kinds. A kind added in one place but not the
others fails here, naming what is missing."""

from __future__ import annotations

import json
import re
import typing
from typing import Dict, List, Set

import pytest

from runner.check.action_lists import kind_of
from runner.check.actions import ACTIONS
from runner.codegen import render
from runner.kinds.attach import CANDIDATE_KINDS, CONTEXTS, OPTIONS
from runner.kinds.builtins import BUILTINS
from runner.kinds.decoders import Decoders
from runner.kinds.maps import MAP_KINDS
from runner.kinds.registry import Registry, UnknownKind
from runner.model import spec as model

from .util import ROOT

SCHEMA = json.loads((ROOT / "schema.json").read_text())
DOCS = (ROOT / "docs" / "spec.md").read_text()


def _docs_table(header: str) -> List[List[str]]:
    """The rows of the docs/spec.md table whose header line starts with `header`."""
    lines = DOCS.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _ticked(cell: str) -> List[str]:
    """Backticked names in a cell, `arg0` .. `arg5` spelled out, `NAME: X` cut to NAME."""
    names = [t.split(":")[0].strip() for t in re.findall(r"`([^`]+)`", cell)]
    if ".." in cell and names[:2] == ["arg0", "arg5"]:
        names = [f"arg{i}" for i in range(6)] + names[2:]
    return names


# -- registries ------------------------------------------------------------------------------

def test_an_unknown_kind_is_a_loud_internal_error_with_a_hint():
    with pytest.raises(UnknownKind, match=r"unknown action 'prnt'.*did you mean 'print'"):
        ACTIONS.lookup("prnt")
    with pytest.raises(UnknownKind, match="map type 'no_such_map'"):
        MAP_KINDS.lookup("no_such_map")
    with pytest.raises(UnknownKind):
        kind_of({"print": "x", "let": {"y": 1}})
    # An action of no known kind was reported by the schema: the checker passes over it.
    assert kind_of({"wait": 1}) is None


def test_a_registry_refuses_a_name_twice():
    r: Registry[int] = Registry("thing")
    r.register("a", 1)
    with pytest.raises(ValueError, match="twice"):
        r.register("a", 2)
    assert r.names() == ("a",) and "a" in r and r.get("b") is None


def test_codegen_refuses_a_node_no_kind_renders():
    with pytest.raises(UnknownKind, match="object is not a model action"):
        render._action_fragment(object())


@pytest.mark.parametrize("name", ACTIONS.names())
def test_every_action_kind_has_a_node_and_a_fragment(name):
    kind = ACTIONS.lookup(name)
    assert kind.name == name
    assert kind.node in typing.get_args(model.Action) or kind.node.__name__ in {
        a.__forward_arg__ for a in typing.get_args(model.Action)
        if isinstance(a, typing.ForwardRef)}, f"{kind.node} is not a model Action"
    fragment = ROOT / "templates" / render.action_fragment(kind.node)
    assert fragment.exists(), f"action '{name}' has no fragment {fragment}"


def test_every_model_action_node_is_rendered_by_some_kind():
    nodes = {getattr(model, a.__forward_arg__) if isinstance(a, typing.ForwardRef) else a
             for a in typing.get_args(model.Action)}
    assert nodes == {k.node for k in ACTIONS.values()}


def test_every_fragment_file_belongs_to_a_kind():
    files = {p.name for p in (ROOT / "templates").glob("action_*.c.j2")}
    assert files == {render.action_fragment(k.node) for k in ACTIONS.values()}


@pytest.mark.parametrize("name", MAP_KINDS.names())
def test_every_map_kind_says_what_it_is(name):
    kind = MAP_KINDS.lookup(name)
    assert isinstance(kind.per_cpu, bool)
    assert kind.family in ("hash", "array", "buffer", "prog_array")
    assert "{name}" in kind.declaration
    assert kind.keys <= set(SCHEMA["$defs"]["map"]["properties"]) - {"type"}
    if kind.is_table:
        assert kind.default_key and kind.default_value
        assert {"key", "value", "max_entries"} <= kind.keys
    if kind.is_buffer:
        assert kind.default_pages > 0 and "value" in kind.keys


def test_per_cpu_is_a_column_not_a_name_prefix():
    # Every type BCC calls per-CPU (lru_percpu_hash too, which a name prefix test missed),
    # without spelling the list: a new map type must not have to edit this test.
    per_cpu = [k.name for k in MAP_KINDS.values() if k.per_cpu]
    assert per_cpu == [k.name for k in MAP_KINDS.values() if "percpu" in k.name]
    assert {"percpu_array", "percpu_hash"} <= set(per_cpu)


@pytest.mark.parametrize("name", OPTIONS.names())
def test_every_attach_option_expands_to_known_candidates_and_contexts(name):
    planned = OPTIONS.lookup(name).expand("target", 1, "")
    assert planned
    for p in planned:
        assert p.kind in CANDIDATE_KINDS, f"{name} plans an unknown candidate kind {p.kind}"
        assert p.context in CONTEXTS, f"{name} plans an unknown context {p.context}"


def test_every_context_is_reachable_and_every_candidate_kind_used():
    contexts: Set[str] = set()
    kinds: Set[str] = set()
    for option in OPTIONS.values():
        for target in ("sys_enter", "syscalls:sys_enter_x", "sched:x", "f"):
            for p in option.expand(target, 1, ""):
                contexts.add(p.context)
                kinds.add(p.kind)
    assert contexts == set(CONTEXTS.names())
    assert kinds == set(CANDIDATE_KINDS.names())


def test_builtin_contexts_are_registered_contexts():
    for b in BUILTINS.values():
        assert b.contexts <= set(CONTEXTS.names()), b.name


# -- schema.json -----------------------------------------------------------------------------

def test_schema_actions_are_the_registry():
    alternatives = SCHEMA["$defs"]["action"]["oneOf"]
    assert [alt["required"][0] for alt in alternatives] == list(ACTIONS.names())
    described = SCHEMA["$defs"]["action"]["description"]
    assert re.findall(r"\b(\w+)(?:,| or |\.)", described.split(":")[1]) == list(ACTIONS.names())


def test_schema_map_types_are_the_registry():
    assert set(SCHEMA["$defs"]["map"]["properties"]["type"]["enum"]) == set(MAP_KINDS.names())


def test_schema_attach_options_are_the_registry():
    assert set(SCHEMA["$defs"]["attach_target"]["properties"]) == set(OPTIONS.names())


def test_schema_value_description_lists_every_builtin():
    text = SCHEMA["$defs"]["value"]["description"]
    listed = re.search(r"a built-in \(([^)]*)\)", text)
    assert listed, text
    names = [n.strip() for n in listed.group(1).split(",")]
    names = [x for n in names for x in ([f"arg{i}" for i in range(6)] if n == "arg0..arg5"
                                        else [n])]
    assert set(names) == set(BUILTINS.names())


def _decoder_names() -> Set[str]:
    return set(Decoders.for_arch("x86_64").names)


def test_schema_decode_descriptions_list_every_decoder():
    texts = _descriptions(SCHEMA, "decode")
    assert len(texts) == 2, texts  # an events output's and an aggregation's
    for text in texts:
        listed = re.search(r"decoder \(([^)]*)\)", text)
        assert listed, text
        assert {n.strip() for n in listed.group(1).split(",")} == _decoder_names()


def _descriptions(node: object, key: str) -> List[str]:
    """The descriptions of every property called `key` in a schema."""
    found: List[str] = []
    if isinstance(node, dict):
        prop = node.get("properties", {}).get(key)
        if isinstance(prop, dict) and "description" in prop:
            found.append(prop["description"])
        for v in node.values():
            found += _descriptions(v, key)
    elif isinstance(node, list):
        for v in node:
            found += _descriptions(v, key)
    return found


# -- docs/spec.md ----------------------------------------------------------------------------

def test_docs_action_table_is_the_registry():
    assert [_ticked(row[0])[0] for row in _docs_table("action")] == list(ACTIONS.names())


def test_docs_map_table_is_the_registry_with_its_keys():
    seen: Dict[str, Set[str]] = {}
    for row in _docs_table("type"):
        for name in _ticked(row[0]):
            seen[name] = set(_ticked(row[1]))
    assert set(seen) == set(MAP_KINDS.names())
    for name, keys in seen.items():
        assert keys == set(MAP_KINDS.lookup(name).keys), f"docs keys of {name}: {keys}"


def test_docs_attach_table_is_the_registry():
    names = [n for row in _docs_table("option") for n in _ticked(row[0])]
    assert sorted(names) == sorted(OPTIONS.names())


def test_docs_builtin_table_is_the_registry():
    names = [n for row in _docs_table("built-in") for n in _ticked(row[0])]
    assert sorted(names) == sorted(BUILTINS.names())


def test_docs_list_every_decoder():
    listed = re.search(r"\(decoders: ([^)]*)\)", DOCS)
    assert listed, "docs/spec.md: no (decoders: ...) list in the output section"
    assert set(_ticked(listed.group(1))) == _decoder_names()
    row = next(r for r in _docs_table("key") if r[0] == "`decode`")
    assert set(_ticked(row[1])) - {"field", "enum NAME"} == _decoder_names()


def test_docs_say_where_each_contextual_builtin_works():
    rows = {_ticked(row[0])[0]: row[2] for row in _docs_table("built-in")}
    words = {"fentry": "fentry", "kprobe": "kprobe", "kretprobe": "kretprobe"}
    for b in BUILTINS.values():
        where = rows.get(b.name, rows.get("arg0" if b.name.startswith("arg") else b.name, ""))
        for context, word in words.items():
            if context in b.contexts:
                assert word in where, f"docs/spec.md: {b.name} works in {context} programs"


@pytest.mark.parametrize("name", CONTEXTS.names())
def test_every_context_has_a_prologue_and_says_whether_it_reads_pt_regs(name):
    context = CONTEXTS.lookup(name)
    assert (ROOT / "templates" / context.prologue).exists(), f"{name}: no {context.prologue}"
    assert context.pt_regs in ("always", "if_used", "never")
    assert context.prog_type in ("KPROBE", "TRACEPOINT", "RAW_TRACEPOINT", "TRACING", "PERF_EVENT")


def test_every_prologue_file_belongs_to_a_context():
    files = {p.name for p in (ROOT / "templates").glob("prologue_*.c.j2")}
    assert files == {c.prologue for c in CONTEXTS.values()}


def test_the_doctor_tries_exactly_the_attach_kinds_with_a_doctor_row():
    from runner.kernel import probe_support

    doctored = {k.name for k in CANDIDATE_KINDS.values() if k.doctor is not None}
    assert doctored == set(probe_support.TRIES) | {"fentry"}
    assert {"kprobe", "tracepoint", "raw_tracepoint", "fentry"} <= doctored
