"""Stage 1: read a YAML spec into plain data plus the location of every node.

PyYAML's safe composer builds a node graph with marks; we turn it into plain
dicts/lists/scalars ourselves so that we can (a) refuse duplicate keys, which
YAML loaders silently collapse, (b) record where each value came from, keyed by
its path (a tuple of keys and indexes, the same paths jsonschema reports), and
(c) bound alias expansion, so a "billion laughs" document fails fast.
Only the safe loader is used: a spec is data and never executes code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Tuple, Union

import yaml

from runner.errors import Diagnostic, Location, SpecError

PathKey = Tuple[Union[str, int], ...]
MAX_NODES = 20_000  # real specs have hundreds; alias bombs blow far past it
MAX_DEPTH = 64
SAFE_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in
                      ("map", "seq", "str", "int", "float", "bool", "null", "timestamp"))


@dataclass(frozen=True)
class Document:
    """A loaded spec: its data, the location of every value, and its text."""

    file: str
    data: Dict[str, Any]
    positions: Dict[PathKey, Location] = field(repr=False)
    key_positions: Dict[PathKey, Location] = field(repr=False)
    lines: Tuple[str, ...] = field(repr=False)

    def where(self, path: PathKey, *, key: bool = False) -> Location:
        """The location of the value at `path` (or of its key), else its nearest parent's."""
        table = self.key_positions if key else self.positions
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.positions:
                return self.positions[p]
            p = p[:-1]
        return self.positions.get((), Location(self.file, 1, 1))

    def diagnostic(
        self, path: PathKey, message: str, hint: str | None = None, *, key: bool = False,
    ) -> Diagnostic:
        loc = self.where(path, key=key)
        src = self.lines[loc.line - 1] if 0 < loc.line <= len(self.lines) else None
        return Diagnostic(loc, message, hint, src)


class _PositionedData:
    """Turns a YAML node tree into plain data, noting where each key and value was."""

    def __init__(self, file: str):
        self.file = file
        self.positions: Dict[PathKey, Location] = {}
        self.key_positions: Dict[PathKey, Location] = {}
        self.count = 0
        self.constructor = yaml.SafeLoader.__new__(yaml.SafeLoader)
        yaml.constructor.SafeConstructor.__init__(self.constructor)

    def loc(self, node: yaml.Node) -> Location:
        # PyYAML marks are 0-based; editors and compilers count from 1.
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: yaml.Node, path: PathKey, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _Fail(node, f"the document expands to more than {MAX_NODES} values "
                              "(an alias bomb?)")
        if depth > MAX_DEPTH:
            raise _Fail(node, f"nesting deeper than {MAX_DEPTH} levels")
        self.positions[path] = self.loc(node)
        if node.tag not in SAFE_TAGS:
            raise _Fail(node, f"YAML tag '{node.tag}' is not allowed: a spec is plain data")
        if isinstance(node, yaml.MappingNode):
            return self.mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(n, (*path, i), depth + 1) for i, n in enumerate(node.value)]
        if node.tag == "tag:yaml.org,2002:timestamp":
            return str(node.value)  # a date-like scalar is text here, not a datetime
        where = f" (in {'.'.join(map(str, path))})" if path else ""
        try:
            value = self.constructor.construct_object(node, deep=True)
        except Exception as e:  # PyYAML constructors raise anything
            # e.g. `!!int "abc"`, `!!bool "maybe"`, `!!int ""`, thousands of digits
            raise _Fail(node, f"invalid {node.tag.rsplit(':', 1)[-1]} value{where}: "
                        f"{_first_line(e)}") from None
        if isinstance(value, str):
            _check_text(node, value)
        if isinstance(value, float) and not math.isfinite(value):
            raise _Fail(node, f"{str(node.value)[:20]!r} is not a finite number{where}")
        if isinstance(value, int) and value.bit_length() > 64:
            raise _Fail(node, f"integer too large (more than 64 bits){where}")
        return value

    def mapping(self, node: yaml.MappingNode, path: PathKey, depth: int) -> Dict[str, Any]:
        if any(k.tag == "tag:yaml.org,2002:merge" for k, _ in node.value):
            raise _Fail(node, "YAML merge keys (<<) are not supported in specs")
        out: Dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise _Fail(knode, "a mapping key must be a plain scalar")
            # Keep the key as written: YAML 1.1 would turn `on:` into True and `59:` into 59.
            key = str(knode.value)
            _check_text(knode, key)
            if key in out:
                first = self.key_positions[(*path, key)]
                raise _Fail(knode, f"duplicate key '{key}' (first defined at line {first.line})")
            self.key_positions[(*path, key)] = self.loc(knode)
            out[key] = self.build(vnode, (*path, key), depth + 1)
        return out


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _check_text(node: yaml.Node, text: str) -> None:
    """YAML escapes can spell lone surrogates ("\\ud800"), which no encoding can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _Fail(node, "the text contains a lone surrogate (\\ud800-\\udfff), which is "
                    "not a character") from None


class _Fail(Exception):
    def __init__(self, node: yaml.Node, message: str):
        self.node = node
        self.message = message


def load_text(text: str, file: str) -> Document:
    lines = tuple(text.splitlines())
    builder = _PositionedData(file)

    def diag(line0: int, col0: int, message: str) -> SpecError:
        src = lines[line0] if 0 <= line0 < len(lines) else None
        return SpecError([Diagnostic(Location(file, line0 + 1, col0 + 1), message, None, src)])

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line0, col0 = (mark.line, mark.column) if mark else (0, 0)
        raise diag(line0, col0, f"invalid YAML: {e.problem or e.context}") from None
    except yaml.reader.ReaderError as e:  # a control character, say
        line0 = text.count("\n", 0, e.position)
        col0 = e.position - (text.rfind("\n", 0, e.position) + 1)
        raise diag(line0, col0, f"invalid YAML: the character {e.character!r} is not "
                   "allowed here") from None
    except yaml.YAMLError as e:
        raise diag(0, 0, f"invalid YAML: {_first_line(e)}") from None
    except RecursionError:
        raise diag(0, 0, "the document is nested too deeply") from None
    if root is None:
        raise diag(0, 0, "the spec is empty; it must be a mapping with at least 'name'")
    if not isinstance(root, yaml.MappingNode):
        m = root.start_mark
        raise diag(m.line, m.column, "the top level of a spec must be a mapping (key: value)")
    try:
        data = builder.build(root, (), 0)
    except _Fail as f:
        m = f.node.start_mark
        raise diag(m.line, m.column, f.message) from None
    except yaml.YAMLError as e:
        raise diag(0, 0, f"invalid YAML value: {e}") from None
    except RecursionError:
        raise diag(0, 0, "the document is nested too deeply") from None
    return Document(file, data, builder.positions, builder.key_positions, lines)


def load_file(path: str | Path) -> Document:
    from runner.spec.source import read_spec

    return load_bytes(read_spec(str(path)), str(path))


def load_bytes(raw: bytes, path: str) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError([Diagnostic(Location(path, line, col),
                                    "the spec is not valid UTF-8")]) from None
    return load_text(text, path)


