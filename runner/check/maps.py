"""The maps section, and ebpf-run's own message buffer. What each map type takes comes from
its row in runner/kinds/maps.py."""

from __future__ import annotations

import contextlib
from typing import Any, Dict

from runner.check.checker import Checker, Skip
from runner.check.names import name_ok
from runner.check.structs import stack_field, type_of, type_size
from runner.kinds.maps import DEFAULT_MAX_ENTRIES, MAP_KINDS, MapKind
from runner.model.spec import Map
from runner.model.types import TypeRef
from runner.spec.loader import PathKey

PAGE = 4096
MESSAGES = "er_messages"


def check(ck: Checker) -> None:
    for name, m in ck.data.get("maps", {}).items():
        with contextlib.suppress(Skip):
            ck.maps[name] = _map(ck, ("maps", name), name, m)


def _map(ck: Checker, path: PathKey, name: str, m: Dict[str, Any]) -> Map:
    name_ok(ck, path, name, "map")
    kind = MAP_KINDS.lookup(m["type"])
    for k in m:
        if k != "type" and k not in kind.keys:
            ck.err((*path, k), f"'{k}' does not apply to a {kind.name} map",
                   f"a {kind.name} map takes: {', '.join(sorted(kind.keys))}", key=True)
    key = value = None
    if kind.is_table:
        assert kind.default_key is not None and kind.default_value is not None
        key = _type(ck, path, m, "key", kind.default_key)
        value = _type(ck, path, m, "value", kind.default_value)
        _no_stack(ck, (*path, "key"), key, "a map's key")
        if kind.required_key and str(key) != kind.required_key:
            ck.err((*path, "key"), f"an {kind.name} map's key must be {kind.required_key}, "
                   f"not {key}")
    if kind.is_buffer:
        value = _event_type(ck, path, kind, m)
    if kind.needs_max_entries and "max_entries" not in m:
        ck.err(path, f"a {kind.name} map needs 'max_entries'")
    return Map(
        name=name, kind=kind.name, key=key, value=value,
        max_entries=int(m.get("max_entries", DEFAULT_MAX_ENTRIES)),
        pages=_buffer_pages(ck, path, kind, m),
        origin=ck.origin(path))


def _type(ck: Checker, path: PathKey, m: Dict[str, Any], which: str, default: str) -> TypeRef:
    t = type_of(ck, (*path, which), m.get(which, default))
    if t is None or (t.is_struct and t.base not in ck.structs):
        raise Skip  # reported already, here or where the struct was refused
    return t


def _no_stack(ck: Checker, path: PathKey, t: TypeRef, where: str) -> None:
    """A struct with a stack field is a map's value: only there is the id read back (by a
    lookup that hands it to an aggregation's key, which shows its frames)."""
    found = stack_field(ck, t) if t.is_struct else None
    if found is not None:
        ck.err(path, f"struct '{t.base}' holds a stack (field '{found}'): it cannot be "
               f"{where}", "a struct with a stack field is the value of a hash map; "
               "aggregate a stack with key: {stack: kstack}")


def _event_type(ck: Checker, path: PathKey, kind: MapKind, m: Dict[str, Any]) -> TypeRef:
    """A buffer's value: the struct of the events it carries."""
    if "value" not in m:
        ck.err(path, f"a {kind.name} map needs 'value': the event struct it carries")
        raise Skip
    value = _type(ck, path, m, "value", "")
    if not (value.is_struct and value.count is None):
        ck.err((*path, "value"), f"a {kind.name} map's value must be a struct, not {value}")
        raise Skip
    size = type_size(ck, value)
    if kind.max_record is not None and size > kind.max_record:
        ck.err((*path, "value"),
               f"struct {value.base} is {size} bytes: a perf event is "
               f"built on the 512-byte BPF stack (limit {kind.max_record})",
               "use a ringbuf map, which builds events in the buffer itself")
    return value


def _buffer_pages(ck: Checker, path: PathKey, kind: MapKind, m: Dict[str, Any]) -> int:
    if not kind.is_buffer:
        return 0
    if "pages" in m and "bytes" in m:
        ck.err((*path, "bytes"), "give 'pages' or 'bytes', not both", key=True)
    if "bytes" in m:
        if m["bytes"] % PAGE:
            ck.err((*path, "bytes"), f"{m['bytes']} is not a multiple of the page size "
                   f"({PAGE})")
            return kind.default_pages
        pages = m["bytes"] // PAGE
        where: PathKey = (*path, "bytes")
    else:
        pages = m.get("pages", kind.default_pages)
        where = (*path, "pages")
    if pages & (pages - 1):
        ck.err(where, f"buffer size must be a power of two pages, not {pages}")
    return int(pages)


def add_messages_map(ck: Checker) -> None:
    """The ring buffer print actions send their records through (messages via buffer)."""
    if ck.via != "buffer":
        return
    pages = ck.data.get("messages", {}).get("pages", 64)
    if pages & (pages - 1):
        ck.err(("messages", "pages"), f"buffer size must be a power of two pages, "
               f"not {pages}")
    ck.messages_map = Map(MESSAGES, "ringbuf", None, None, 0, int(pages),
                          "messages (ebpf-run's message buffer)")
