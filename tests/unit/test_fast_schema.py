"""runner/spec/fast_schema.py against jsonschema, the oracle: whatever it calls valid,
jsonschema must find no error in, on every shipped spec, every golden and spec-test case,
generated specs and thousands of mutants of them; and it must call the valid ones valid,
or it saves nothing. A valid spec is checked without importing jsonschema at all."""

from __future__ import annotations

import copy
from typing import Any, Iterator, List, Tuple

import pytest
import yaml
from specgen import generate

from runner.spec import fast_schema, loader, schema
from runner.support.resources import schema as schema_json

from .util import ROOT, python_says, tree_get, tree_paths

SHIPPED = sorted(ROOT.glob("specs/**/*.yaml")) + sorted(ROOT.glob("bench/*.yaml")) + sorted(
    (ROOT / "tests" / "data").glob("**/*.yaml"))


def oracle_valid(data: Any) -> bool:
    return not any(True for _ in schema.validator().iter_errors(data))


def fast_valid(data: Any) -> bool:
    return fast_schema.is_valid(schema_json(), data)


def documents() -> List[Tuple[str, Any]]:
    docs = []
    for p in SHIPPED:
        try:
            docs.append((str(p.relative_to(ROOT)), loader.load_file(str(p)).data))
        except Exception:  # a deliberately broken YAML fixture: not a schema question
            continue
    docs += [(f"generated {i}", yaml.safe_load(generate(7, i))) for i in range(120)]
    return docs


DOCS = documents()


def test_every_valid_document_is_called_valid():
    valid = [(name, d) for name, d in DOCS if oracle_valid(d)]
    assert len(valid) > 100
    assert [name for name, d in valid if not fast_valid(d)] == []


def test_valid_means_the_oracle_agrees_on_every_document():
    wrong = [name for name, d in DOCS if fast_valid(d) and not oracle_valid(d)]
    assert wrong == []


# -- mutants: one change at one place of a document ----------------------------------------

REPLACEMENTS: List[Any] = [None, True, False, 0, -1, 2, 2.0, 1.5, 2**70, "", "x", "x\n",
                           "syscall", "u64", "char[16]", [], [1], {}, {"x": 1}, float("inf")]


def mutants(data: Any) -> Iterator[Any]:
    for path in tree_paths(data):
        if not path:
            continue
        parent, last = path[:-1], path[-1]
        for new in REPLACEMENTS:
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


# Every shipped and fixture document, and a few generated ones (their constructs repeat).
@pytest.mark.parametrize("name", [n for n, _ in DOCS if not n.startswith("generated")]
                         + ["generated 5", "generated 77"])
def test_valid_means_the_oracle_agrees_on_mutants(name):
    data = dict(DOCS)[name]
    checked = wrong = called_valid = 0
    for m in mutants(data):
        checked += 1
        if fast_valid(m):
            called_valid += 1
            wrong += not oracle_valid(m)
    assert checked > 50 and wrong == 0
    # Some mutants stay valid (a description changed): the fast path must not be just False.
    assert called_valid > 0


def test_what_it_does_not_know_it_leaves_to_jsonschema():
    assert not fast_schema.is_valid({"type": "object", "patternProperties": {}}, {})
    assert not fast_schema.is_valid({"$ref": "other.json#/x"}, 1)
    assert not fast_schema.is_valid({"type": "object"}, {1: "an int key"})
    assert not fast_schema.is_valid({"properties": {"a": {}}}, {"a": (1, 2)})  # not JSON


def test_its_rules_are_schema_pys():
    # An integer is never a bool or 2.0; a pattern's `$` is the end of the text.
    assert not fast_valid({"name": "x", "probes": {"p": {"attach": {"syscall": True}}}})
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
