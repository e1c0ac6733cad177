"""Frozen dataclasses to JSON and back, for the compile cache.

JSON cannot run code when read, unlike pickle; but the rebuilt value still decides what
the BPF program and the generated Python do, so decoding is strict. A class is rebuilt
only when its name is in the allow-list the codec was made with, only from exactly the
fields its `__init__` takes, and every value must match the field's declared type
(None, bool, int, float, str, tuples, dicts with str keys, unions and allowed dataclasses).
Anything else raises `Corrupt`. Nothing here knows the model's classes: fields are read
with `dataclasses.fields` and types with `typing.get_type_hints`, so fields can be added
or renamed without touching this file.

The JSON shapes: a tuple is an array; a dataclass is {"class": NAME, "fields": {...}};
a dict is {"dict": {...}}; None, booleans, numbers and strings are themselves.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from typing import Any, Callable, Dict, Iterable, Mapping, Tuple, Type

_UNION_TYPE = getattr(types, "UnionType", None)  # `X | Y` at run time (Python 3.10+)


class Corrupt(ValueError):
    """The text does not describe a value of the expected type."""


class Unsupported(TypeError):
    """A value or a declared field type this codec has no JSON form for: a bug in the
    model or here, not in the data."""


def class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class Codec:
    def __init__(self, classes: Iterable[type]) -> None:
        self._classes: Dict[str, type] = {}
        for cls in classes:
            params = getattr(cls, "__dataclass_params__", None)
            if params is None or not params.frozen:
                raise Unsupported(f"{class_name(cls)} is not a frozen dataclass")
            self._classes[class_name(cls)] = cls
        self._allowed = set(self._classes.values())
        # Annotations name classes that may be imported only for type checking (e.g. the
        # pipeline's Compiled names Spec): resolve them among the allowed classes too.
        self._names = {cls.__name__: cls for cls in self._classes.values()}
        self._hints: Dict[type, Dict[str, Any]] = {}

    # -- writing

    def dumps(self, value: Any) -> bytes:
        return json.dumps(self._encode(value), ensure_ascii=False,
                          separators=(",", ":")).encode()

    def _encode(self, value: Any) -> Any:
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return [self._encode(v) for v in value]
        if isinstance(value, dict):
            if not all(isinstance(k, str) for k in value):
                raise Unsupported("a dict key that is not a str")
            return {"dict": {k: self._encode(v) for k, v in value.items()}}
        cls = type(value)
        if self._classes.get(class_name(cls)) is not cls:
            raise Unsupported(f"{class_name(cls)} is not an allowed class")
        return {"class": class_name(cls),
                "fields": {f.name: self._encode(getattr(value, f.name))
                           for f in dataclasses.fields(value) if f.init}}

    # -- reading

    def loads(self, data: bytes, expected: type) -> Any:
        """Rebuild a value of type `expected` (an allowed class) from `dumps` output."""
        try:
            tree = json.loads(data)
        except (ValueError, RecursionError) as e:  # bad UTF-8 or syntax, a 5000-digit number
            raise Corrupt(f"not JSON ({e})") from None
        try:
            return self._decode(tree, expected, "")
        except RecursionError:
            raise Corrupt("nested too deeply") from None

    def _decode(self, node: Any, tp: Any, where: str) -> Any:
        """`node` as a value of declared type `tp`; `where` names it in error messages."""
        if tp is type(None):
            return _expect(node, node is None, "null", where)
        if tp is bool:
            return _expect(node, isinstance(node, bool), "a boolean", where)
        if tp is int:
            return _expect(node, type(node) is int, "an integer", where)
        if tp is float:  # PEP 484: an int is acceptable where a float is declared
            return _expect(node, type(node) in (int, float), "a number", where)
        if tp is str:
            return _expect(node, isinstance(node, str), "a string", where)
        if tp in self._allowed:
            return self._decode_class(node, tp, where)
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Union or (_UNION_TYPE is not None and origin is _UNION_TYPE):
            return self._decode_union(node, args, where)
        if origin is tuple:
            return self._decode_tuple(node, args, where)
        if origin in (dict, Mapping, typing.Mapping) and args and args[0] is str:
            inner = node.get("dict") if isinstance(node, dict) and len(node) == 1 else None
            if not isinstance(inner, dict):
                raise Corrupt(f"{where or 'value'}: expected a dict")
            return {k: self._decode(v, args[1], f"{where}[{k!r}]") for k, v in inner.items()}
        if origin is typing.Literal:
            return _expect(node, any(type(node) is type(a) and node == a for a in args),
                           f"one of {args}", where)
        raise Unsupported(f"{where or 'value'}: no JSON form for the declared type {tp!r}")

    def _decode_union(self, node: Any, arms: Tuple[Any, ...], where: str) -> Any:
        if isinstance(node, dict) and "class" in node:
            # Pick the arm by the class the node names: trying each arm in turn would
            # report the wrong arm's complaint, and cost a failed decode per arm.
            cls = self._classes.get(node["class"]) if isinstance(node["class"], str) else None
            if cls is not None and cls in arms:
                return self._decode_class(node, cls, where)
            raise Corrupt(f"{where or 'value'}: class {node['class']!r} is not allowed here")
        problems = []
        for arm in arms:
            if arm in self._allowed:
                continue  # only a {"class": ...} node can be one of these: handled above
            try:
                return self._decode(node, arm, where)
            except Corrupt as e:
                problems.append(str(e))
        raise Corrupt("; ".join(problems) or f"{where or 'value'}: expected an object")

    def _decode_tuple(self, node: Any, args: Tuple[Any, ...], where: str) -> Tuple[Any, ...]:
        if not isinstance(node, list):
            raise Corrupt(f"{where or 'value'}: expected an array")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(self._decode(v, args[0], f"{where}[{i}]") for i, v in enumerate(node))
        if len(node) != len(args):  # Tuple[()] has no args and takes only []
            raise Corrupt(f"{where or 'value'}: expected {len(args)} items, found {len(node)}")
        return tuple(self._decode(v, t, f"{where}[{i}]")
                     for i, (v, t) in enumerate(zip(node, args)))

    def _decode_class(self, node: Any, cls: type, where: str) -> Any:
        if not (isinstance(node, dict) and set(node) == {"class", "fields"}
                and node["class"] == class_name(cls) and isinstance(node["fields"], dict)):
            raise Corrupt(f"{where or 'value'}: expected a {cls.__qualname__} object")
        hints = self._field_types(cls)
        given = node["fields"]
        if set(given) != set(hints):
            raise Corrupt(f"{where or 'value'}: {cls.__qualname__} fields differ: "
                          f"expected {sorted(hints)}, found {sorted(given)}")
        at = f"{where}." if where else ""
        values = {name: self._decode(given[name], tp, f"{at}{name}")
                  for name, tp in hints.items()}
        make: Callable[..., Any] = cls
        try:
            return make(**values)
        except (TypeError, ValueError) as e:  # a __post_init__ refusing the values
            raise Corrupt(f"{where or 'value'}: {cls.__qualname__}: {e}") from None

    def _field_types(self, cls: Type[Any]) -> Dict[str, Any]:
        """The declared type of each `__init__` field, evaluated once per class."""
        if cls not in self._hints:
            try:
                # The class's own module names first: two model modules may each have a
                # `Condition` (an expression union, a test-case class), and an annotation
                # means the one its module imports. The allowed classes resolve the rest.
                module = sys.modules.get(cls.__module__)
                names = {**self._names, **(vars(module) if module else {})}
                hints = typing.get_type_hints(cls, localns=names)
            except Exception as e:  # evaluating annotations may raise anything
                raise Unsupported(f"{class_name(cls)}: annotations: {e}") from e
            self._hints[cls] = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
        return self._hints[cls]


def _expect(node: Any, ok: bool, what: str, where: str) -> Any:
    if not ok:
        raise Corrupt(f"{where or 'value'}: expected {what}, found {type(node).__name__}")
    return node
