"""schema.json itself, and every shipped spec against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "schema.json").read_text())
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def test_schema_is_valid_2020_12():
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def _properties(node, path=()):
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            yield (*path, key), sub
        for key, sub in node.items():
            yield from _properties(sub, (*path, key))
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from _properties(sub, (*path, i))


def test_every_key_has_a_description():
    missing = []
    for path, sub in _properties(SCHEMA):
        has = "description" in sub or ("$ref" in sub and "description" in _resolve(sub["$ref"]))
        if not has:
            missing.append("/".join(map(str, path)))
    assert missing == []


def _resolve(ref):
    node = SCHEMA
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def test_every_object_refuses_unknown_keys():
    def objects(node, path=()):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                yield path, node
            for k, v in node.items():
                yield from objects(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from objects(v, (*path, i))

    open_objects = [p for p, n in objects(SCHEMA) if n.get("additionalProperties") is not False]
    assert open_objects == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_shipped_spec_matches_schema(spec):
    jsonschema.Draft202012Validator(SCHEMA).validate(yaml.safe_load(spec.read_text()))


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_shipped_spec_names_schema_for_editors(spec):
    assert spec.read_text().splitlines()[0] == "# yaml-language-server: $schema=../schema.json"


def test_chapter2_specs_are_shipped():
    names = {p.stem for p in SPECS}
    assert {"hello", "hello-map", "hello-buffer", "hello-ring-buffer", "hello-tail"} <= names
