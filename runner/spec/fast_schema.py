"""Is a spec valid against schema.json? Answered without jsonschema, for the common case.

Importing jsonschema costs about 32 ms (it brings referencing, attrs, rpds, urllib and
more), a sixth of a first run's start-up, and a valid spec needs none of its messages.
This validator knows exactly the keywords schema.json uses, with schema.py's two local
rules (an integer is an int, never a bool or 2.0; a pattern's `$` is the end of the text),
and answers True only when sure. Anything it does not know (a keyword, a value that is
not JSON, a key that is not a string, a $ref outside the file) makes it answer False, and
schema.py then asks jsonschema, which decides and words the errors. So the one property
that matters: True here implies jsonschema finds no error (tests/unit/test_fast_schema.py
holds it against jsonschema on every shipped spec, generated specs, mutants of both, and
keyword by keyword on small schemas; on JSON data the two in fact agree exactly).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Dict, List, Sized, Type

# Keywords that only describe: they never make a value invalid.
_ANNOTATIONS = frozenset({"description", "title", "$comment", "default", "examples",
                          "markdownDescription", "deprecated"})
# Only at the top: a nested $id would move the base its "#/..." refs resolve against, and a
# nested $schema could change the dialect.
_ROOT_ONLY = frozenset({"$schema", "$id"})
_TYPES: Dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}
_JSON = (dict, list, str, int, float, bool, type(None))


class _Unsure(Exception):
    """Something this validator does not decide: jsonschema must."""


def is_valid(schema: Dict[str, Any], instance: Any) -> bool:
    """True only if `instance` is certainly valid against `schema` (a draft 2020-12
    schema whose $refs are all local JSON pointers)."""
    try:
        return _Validator(schema).valid(schema, instance)
    except _Unsure:
        return False


class _Validator:
    def __init__(self, root: Dict[str, Any]):
        self._root = root

    def valid(self, schema: Any, value: Any) -> bool:
        if schema is True or schema is False:
            return schema
        if not isinstance(schema, dict) or not isinstance(value, _JSON) or (
                isinstance(value, dict) and not all(isinstance(k, str) for k in value)):
            raise _Unsure
        for keyword, arg in schema.items():
            if keyword in _ANNOTATIONS or keyword == "$defs" or (
                    keyword in _ROOT_ONLY and schema is self._root):
                continue
            if keyword == "additionalProperties":
                if not self._additional(arg, value, schema.get("properties", {})):
                    return False
                continue
            check = _CHECKS.get(keyword)
            if check is None:
                raise _Unsure
            if not check(self, arg, value):
                return False
        return True

    def _additional(self, arg: Any, value: Any, named: Dict[str, Any]) -> bool:
        """The keys `properties` beside it does not name. (schema.json has no
        patternProperties: that keyword would make this validator unsure.)"""
        if not isinstance(value, dict):
            return True
        return all(self.valid(arg, x) for k, x in value.items() if k not in named)

    def ref(self, ref: Any) -> Any:
        """The subschema a local JSON pointer ("#/$defs/value") names."""
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise _Unsure
        node: Any = self._root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                raise _Unsure
            node = node[part]
        return node


# -- one function per keyword: (validator, the keyword's value, the instance) -> valid?


def _type(v: _Validator, arg: Any, value: Any) -> bool:
    names = arg if isinstance(arg, list) else [arg]
    if any(n not in _TYPES for n in names):
        raise _Unsure
    return any(_TYPES[n](value) for n in names)


def _properties(v: _Validator, arg: Dict[str, Any], value: Any) -> bool:
    if not isinstance(value, dict):
        return True
    return all(v.valid(sub, value[k]) for k, sub in arg.items() if k in value)


def _required(v: _Validator, arg: List[str], value: Any) -> bool:
    return not isinstance(value, dict) or all(k in value for k in arg)


def _property_names(v: _Validator, arg: Any, value: Any) -> bool:
    return not isinstance(value, dict) or all(v.valid(arg, k) for k in value)


def _items(v: _Validator, arg: Any, value: Any) -> bool:
    return not isinstance(value, list) or all(v.valid(arg, x) for x in value)


def _pattern(v: _Validator, arg: str, value: Any) -> bool:
    return not isinstance(value, str) or anchored(arg).search(value) is not None


@functools.cache
def anchored(pattern: str) -> re.Pattern[str]:
    # The project's rule, schema.py's too: JSON Schema's `$` is the end of the text;
    # Python's also matches before a final newline.
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def _bound(breaks: Callable[[Any, Any], bool]) -> Callable[[_Validator, Any, Any], bool]:
    """`breaks` is jsonschema's own test of a breach, written the same way round, so the
    two agree even where comparisons are all false (a NaN breaks no bound there)."""
    def check(v: _Validator, arg: Any, value: Any) -> bool:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return not (number and breaks(value, arg))
    return check


def _size(kind: Type[Sized], compare: Callable[[int, int], bool]
          ) -> Callable[[_Validator, Any, Any], bool]:
    def check(v: _Validator, arg: int, value: Any) -> bool:
        return not isinstance(value, kind) or compare(len(value), arg)
    return check


def _enum(v: _Validator, arg: List[Any], value: Any) -> bool:
    return any(_equal(value, x) for x in arg)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, and 1 is 1.0 (as jsonschema compares)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (dict, list, str)) or isinstance(b, (dict, list, str)):
        if type(a) is not type(b):
            return False
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
        if isinstance(a, list):
            return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _one_of(v: _Validator, arg: List[Any], value: Any) -> bool:
    return sum(1 for sub in arg if v.valid(sub, value)) == 1


def _any_of(v: _Validator, arg: List[Any], value: Any) -> bool:
    return any(v.valid(sub, value) for sub in arg)


def _not(v: _Validator, arg: Any, value: Any) -> bool:
    return not v.valid(arg, value)


def _ref(v: _Validator, arg: Any, value: Any) -> bool:
    return v.valid(v.ref(arg), value)


_CHECKS: Dict[str, Callable[[_Validator, Any, Any], bool]] = {
    "type": _type,
    "properties": _properties,
    "required": _required,
    "propertyNames": _property_names,
    "items": _items,
    "pattern": _pattern,
    "minimum": _bound(lambda x, b: x < b),
    "maximum": _bound(lambda x, b: x > b),
    "exclusiveMinimum": _bound(lambda x, b: x <= b),
    "exclusiveMaximum": _bound(lambda x, b: x >= b),
    "minLength": _size(str, lambda n, b: n >= b),
    "maxLength": _size(str, lambda n, b: n <= b),
    "minItems": _size(list, lambda n, b: n >= b),
    "maxItems": _size(list, lambda n, b: n <= b),
    "minProperties": _size(dict, lambda n, b: n >= b),
    "maxProperties": _size(dict, lambda n, b: n <= b),
    "enum": _enum,
    "oneOf": _one_of,
    "anyOf": _any_of,
    "not": _not,
    "$ref": _ref,
}
