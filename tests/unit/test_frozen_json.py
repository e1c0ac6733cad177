"""The cache's JSON codec: any frozen dataclass round-trips, and anything but the declared
shape (unknown class, wrong fields, wrong primitive type) is refused as Corrupt."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Union

import pytest

from runner.model import spec as model_spec
from runner.model import types as model_types
from runner.support import cache
from runner.support.frozen_json import Codec, Corrupt, Unsupported, class_name


@dataclass(frozen=True)
class Leaf:
    n: int
    ratio: float
    name: str
    flag: bool = False


@dataclass(frozen=True)
class Other:
    text: str


@dataclass(frozen=True)
class Tree:
    leaves: Tuple[Leaf, ...]
    pair: Tuple[int, str]
    maybe: Optional[Leaf]
    either: Union[Leaf, Other, None]
    table: Dict[str, Tuple[int, ...]]
    derived: int = field(init=False, default=0)  # not an __init__ field: not stored


@dataclass
class Mutable:
    n: int


CODEC = Codec([Leaf, Other, Tree])
TREE = Tree((Leaf(1, 0.5, "a"), Leaf(2, 3, "b", True)), (7, "x"), None, Other("o"),
            {"k": (1, 2), "": ()})


def test_round_trip_keeps_types_and_values():
    again = CODEC.loads(CODEC.dumps(TREE), Tree)
    assert again == TREE
    assert type(again.pair) is tuple and type(again.table["k"]) is tuple
    assert type(again.either) is Other


def forged(**changes):
    """TREE's JSON with the top-level fields changed."""
    tree = json.loads(CODEC.dumps(TREE))
    tree["fields"].update(changes)
    return json.dumps(tree).encode()


@pytest.mark.parametrize("changes, complaint", [
    ({"pair": [7, 8]}, "pair[1]: expected a string, found int"),
    ({"pair": [True, "x"]}, "pair[0]: expected an integer, found bool"),
    ({"pair": [7]}, "pair: expected 2 items, found 1"),
    ({"leaves": {"dict": {}}}, "leaves: expected an array"),
    ({"table": {"k": [1]}}, "table: expected a dict"),
    ({"table": {"dict": {"k": ["1"]}}}, "table['k'][0]: expected an integer, found str"),
    ({"maybe": {"class": "os.system", "fields": {}}}, "class 'os.system' is not allowed here"),
    ({"either": {"class": class_name(Tree), "fields": {}}}, "is not allowed here"),
    ({"either": 3}, "either: expected null, found int"),
])
def test_a_value_of_the_wrong_type_is_corrupt(changes, complaint):
    with pytest.raises(Corrupt) as e:
        CODEC.loads(forged(**changes), Tree)
    assert complaint in str(e.value)


def test_a_field_added_or_missing_is_corrupt():
    tree = json.loads(CODEC.dumps(TREE))
    tree["fields"]["extra"] = 1
    with pytest.raises(Corrupt, match="Tree fields differ"):
        CODEC.loads(json.dumps(tree).encode(), Tree)
    del tree["fields"]["extra"], tree["fields"]["maybe"]
    with pytest.raises(Corrupt, match="Tree fields differ"):
        CODEC.loads(json.dumps(tree).encode(), Tree)


def test_an_unknown_or_unexpected_class_at_the_top_is_corrupt():
    with pytest.raises(Corrupt, match="expected a Tree object"):
        CODEC.loads(b'{"class": "builtins.eval", "fields": {}}', Tree)
    with pytest.raises(Corrupt, match="expected a Tree object"):
        CODEC.loads(CODEC.dumps(Leaf(1, 1.0, "a")), Tree)


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[" * 100000 + b"]" * 100000,
                                  b'{"class": ' + b"1" * 5000 + b"}"])
def test_text_that_is_not_json_is_corrupt(data):
    with pytest.raises(Corrupt):
        CODEC.loads(data, Tree)


def test_classes_outside_the_allow_list_are_not_written():
    with pytest.raises(Unsupported, match="is not an allowed class"):
        Codec([Other]).dumps(Leaf(1, 1.0, "a"))
    with pytest.raises(Unsupported, match="not a frozen dataclass"):
        Codec([Mutable])


def test_the_allow_list_is_every_frozen_dataclass_of_the_model_and_nothing_else():
    found = set(cache.model_classes())
    assert {model_spec.Spec, model_spec.Rendered, model_spec.Map, model_spec.If,
            model_types.TypeRef, model_types.Layout, model_types.Member} <= found
    assert all(c.__module__.startswith("runner.model") for c in found)
