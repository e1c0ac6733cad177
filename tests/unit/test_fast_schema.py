"""runner/spec/fast_schema.py against jsonschema, the oracle (schema.py's validator, with
its two rules). Whatever the fast validator calls valid, jsonschema must find no error in:
that is the one property schema.py relies on. It is held on every shipped spec, every
golden document, the loadable error-message cases, 300 generated specs and tens of thousands of
one-change mutants of them, and keyword by keyword on small schemas and edge values. The
fast validator must also call the valid ones valid, or it saves nothing; on JSON data it
in fact agrees with jsonschema exactly, and the tests hold that too. A valid spec is
checked without importing jsonschema at all."""

from __future__ import annotations

import copy
import functools
from typing import Any, Dict, Iterator, List, Tuple

import pytest
from specgen import generate

from runner.errors import SpecError
from runner.spec import fast_schema, loader, schema
from runner.support.resources import schema as schema_json

from .test_errors import CASES
from .util import ROOT, python_says, tree_get, tree_paths

SHIPPED = sorted(ROOT.glob("specs/**/*.yaml")) + sorted(ROOT.glob("bench/*.yaml")) + sorted(
    (ROOT / "tests" / "data").glob("**/*.yaml"))


def oracle_valid(data: Any) -> bool:
    return not any(True for _ in schema.validator().iter_errors(data))


def fast_valid(data: Any) -> bool:
    return fast_schema.is_valid(schema_json(), data)


@functools.cache  # when first asked, not at collection: a second or so
def documents() -> List[Tuple[str, Any]]:
    """Loaded as the pipeline loads them: keys as text, no NaN, dates as text."""
    docs = [(str(p.relative_to(ROOT)), loader.load_file(str(p)).data) for p in SHIPPED]
    docs += [(f"generated {i}", loader.load_text(generate(7, i), f"generated{i}.yaml").data)
             for i in range(300)]
    return docs


def error_documents() -> List[Tuple[str, Any]]:
    """test_errors.py's specs that load: most pass the schema and are refused later, by
    the checker, so the fast validator must call them valid; one breaks the schema."""
    docs = []
    for name, (text, _expected, _hint) in sorted(CASES.items()):
        try:
            docs.append((name, loader.load_text(text, f"{name}.yaml").data))
        except SpecError:  # refused by the loader (YAML syntax, duplicate key...)
            continue
    return docs


ERROR_DOCS = error_documents()


def test_the_documents_are_what_they_claim():
    assert len(SHIPPED) >= 30
    assert len(ERROR_DOCS) >= 20


def test_every_valid_document_is_called_valid():
    valid = [(name, d) for name, d in documents() if oracle_valid(d)]
    assert len(valid) >= len(SHIPPED) + 250
    assert [name for name, d in valid if not fast_valid(d)] == []


def test_every_shipped_spec_is_valid_and_called_valid():
    shipped = [(name, d) for name, d in documents() if not name.startswith("generated")]
    assert [name for name, d in shipped if not (oracle_valid(d) and fast_valid(d))] == []


def test_it_agrees_with_the_oracle_on_every_document():
    docs = documents() + ERROR_DOCS
    assert [name for name, d in docs if fast_valid(d) != oracle_valid(d)] == []
    assert sum(not oracle_valid(d) for _, d in ERROR_DOCS) >= 1


# -- mutants: one change at one place of a document ----------------------------------------

REPLACEMENTS: List[Any] = [None, True, False, 0, -1, 1, 2, 2.0, 1.5, 2**70, float("inf"),
                           "", "x", "x\n", "a" * 65, "x" * 4097, "syscall", "u64", "char[16]",
                           [], [1], [{}], {}, {"x": 1}, {"print": "x"}]


def neighbours(value: Any) -> Iterator[Any]:
    """Values next to `value`: across a bound, a pattern's end, the integer/float line."""
    if isinstance(value, str):
        yield value + "\n"  # JSON Schema's `$` does not match before it
        yield value + "-"
    elif isinstance(value, int) and not isinstance(value, bool):
        yield from (value - 1, value + 1, float(value), -value)
    elif isinstance(value, float):
        yield from (int(value), value - 1)


def mutants(data: Any) -> Iterator[Any]:
    for path in tree_paths(data):
        if not path:
            continue
        parent, last = path[:-1], path[-1]
        for new in [*REPLACEMENTS, *neighbours(tree_get(data, path))]:
            m = copy.deepcopy(data)
            tree_get(m, parent)[last] = copy.deepcopy(new)
            yield m
        m = copy.deepcopy(data)
        container = tree_get(m, parent)
        if isinstance(container, dict):
            del container[last]  # a required key, maybe
            yield m
            m = copy.deepcopy(data)
            tree_get(m, parent)["no_such_key"] = 1
            yield m
        else:
            container.pop(last)  # fewer items than minItems, maybe
            yield m


# The development loop (./scripts/test --fast) checks every SAMPLE-th mutant of each
# document; the full run checks the rest too, so between them every mutant, once.
SAMPLE = 20


def tally(data: Any, part: str) -> Dict[str, int]:
    """Every mutant the fast validator calls valid is asked of the oracle (the property);
    of those it calls invalid, every third (the oracle is slow, and exactness is a bonus)."""
    n = {"mutants": 0, "called valid": 0, "wrongly valid": 0, "asked": 0, "wrongly invalid": 0}
    for i, m in enumerate(mutants(data)):
        if (i % SAMPLE == 0) != (part == "sample"):
            continue
        n["mutants"] += 1
        if fast_valid(m):
            n["called valid"] += 1
            n["wrongly valid"] += not oracle_valid(m)
        elif i % 3 == 0:
            n["asked"] += 1
            n["wrongly invalid"] += oracle_valid(m)
    return n


# Every shipped and fixture document, and a few generated ones (their constructs repeat).
@pytest.mark.parametrize("part", ["sample", pytest.param("rest", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name", [str(p.relative_to(ROOT)) for p in SHIPPED]
                         + ["generated 5", "generated 77", "generated 150"])
def test_it_agrees_with_the_oracle_on_mutants(name, part):
    n = tally(dict(documents())[name], part)
    share = SAMPLE if part == "sample" else 1
    assert n["mutants"] > 50 // share and n["asked"] > 10 // share
    assert n["wrongly valid"] == 0, n
    assert n["wrongly invalid"] == 0, n
    # Some mutants stay valid (a description changed): the fast path must not be just False.
    # (A sample may hold none; test_every_valid_document_is_called_valid holds it there.)
    assert n["called valid"] > 0 or part == "sample", n


# -- keyword by keyword, on small schemas ------------------------------------------------

SMALL: List[Dict[str, Any]] = [
    {"type": "integer"}, {"type": "number"}, {"type": "string"}, {"type": "boolean"},
    {"type": "null"}, {"type": "object"}, {"type": "array"}, {"type": ["string", "integer"]},
    {"minimum": 1}, {"maximum": 1}, {"exclusiveMinimum": 0}, {"exclusiveMaximum": 1},
    {"minimum": 1.5}, {"minLength": 1}, {"maxLength": 1}, {"minItems": 1}, {"maxItems": 1},
    {"minProperties": 1}, {"maxProperties": 1}, {"pattern": "^[a-z]+$"}, {"pattern": "b"},
    {"enum": [1, "a", None, [1], {"a": 1}]}, {"enum": [True]}, {"enum": [1.0, False]},
    {"required": ["a"]}, {"properties": {"a": {"type": "integer"}, "b": False}},
    {"properties": {"a": {}}, "additionalProperties": False},
    {"additionalProperties": {"type": "string"}}, {"propertyNames": {"pattern": "^a$"}},
    {"items": {"type": "integer"}}, {"items": False}, {"items": True},
    {"oneOf": [{"type": "integer"}, {"minimum": 0}]},
    {"anyOf": [{"type": "string"}, {"maximum": 0}]}, {"not": {"type": "string"}},
    {"not": {"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}},
    {"$ref": "#/$defs/a", "$defs": {"a": {"type": "integer", "minimum": 0}}},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://x.invalid/s",
     "title": "t", "description": "d", "type": "object"},
]
VALUES: List[Any] = [None, True, False, 0, 1, -1, 1.0, 2.0, 0.5, 1.5, 2**70, float("inf"),
                     float("nan"), "", "a", "a\n", "ab", "b", "ba", [], [1], [1, 2], [True],
                     [1.0], ["a"], {}, {"a": 1}, {"a": 1.0}, {"a": True}, {"a": "x"}, {"b": 1},
                     {"a": 1, "b": 2}]


@pytest.mark.parametrize("small", SMALL, ids=lambda s: "-".join(map(str, s)))
def test_each_keyword_agrees_with_the_oracle(small):
    oracle = schema.validator_for(small)
    wrong = [v for v in VALUES if fast_schema.is_valid(small, v) != oracle.is_valid(v)]
    assert wrong == []


def test_what_it_does_not_know_it_leaves_to_jsonschema():
    assert not fast_schema.is_valid({"type": "object", "patternProperties": {}}, {})
    assert not fast_schema.is_valid({"$ref": "other.json#/x"}, 1)
    assert not fast_schema.is_valid({"type": "object"}, {1: "an int key"})
    assert not fast_schema.is_valid({"properties": {"a": {}}}, {"a": (1, 2)})  # not JSON
    # A nested $id moves the base of "#/..." refs.
    assert not fast_schema.is_valid({"properties": {"a": {"$id": "b", "type": "integer"}}},
                                    {"a": 1})
    assert not fast_schema.is_valid({"properties": {"a": 3}}, {"a": 1})  # not a schema


def test_its_rules_are_schema_pys():
    # An integer is never a bool or 2.0; a pattern's `$` is the end of the text.
    assert not fast_valid({"name": "x", "probes": {"p": {"attach": {"syscall": True}}}})
    assert not fast_valid({"name": "x\n"})
    assert fast_valid({"name": "x"})
    assert fast_schema.is_valid({"type": "integer"}, 2)
    assert not fast_schema.is_valid({"type": "integer"}, 2.0)
    assert not fast_schema.is_valid({"type": "integer"}, True)
    assert not fast_schema.is_valid({"pattern": "^a$"}, "a\n")
    assert not fast_schema.is_valid({"enum": [1]}, True)
    assert fast_schema.is_valid({"enum": [1]}, 1.0)


def test_a_valid_spec_is_checked_without_jsonschema():
    code = ("import sys; from runner.pipeline import check; "
            "check('bench/getppid.yaml', 'x86_64'); print('jsonschema' in sys.modules)")
    assert python_says(code) == "False"


def test_importing_the_schema_stage_does_not_import_jsonschema():
    code = "import sys, runner.spec.schema; print('jsonschema' in sys.modules)"
    assert python_says(code) == "False"


def test_an_invalid_spec_still_gets_jsonschemas_located_message(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nmessages: {pages: 3.0}\n")
    code = ("import sys; from runner.pipeline import check; from runner.errors import SpecError\n"
            "try:\n"
            f"    check({str(path)!r}, 'x86_64')\n"
            "except SpecError as e:\n"
            "    print(e.diagnostics[0].location.line, e.diagnostics[0].message)\n"
            "print('jsonschema' in sys.modules)")
    assert python_says(code).splitlines() == [
        "2 expected an integer, got float 3.0 (in messages.pages)", "True"]
