"""The output section: how events from buffers are printed, and which maps are dumped."""

from __future__ import annotations

from typing import Any, Dict, Tuple

from runner.check import formats, readable
from runner.check.checker import Checker, Skip
from runner.check.resolve import LANGUAGE_NAMES
from runner.kinds.maps import MAP_KINDS, buffer_names
from runner.model.spec import EventOutput, MapOutput
from runner.model.stacks import STACK_PID
from runner.spec.loader import PathKey


def events(ck: Checker) -> Tuple[EventOutput, ...]:
    out: Dict[str, EventOutput] = {}
    for i, entry in enumerate(ck.data.get("output", [])):
        if "events" in entry:
            _event_output(ck, ("output", i), entry, out)
    # Every buffer gets printed; one without an output entry shows all its fields.
    for m in ck.maps.values():
        if MAP_KINDS.lookup(m.kind).is_buffer and m.name not in out and m.value is not None:
            struct = ck.structs.get(m.value.base)
            if struct:
                out[m.name] = EventOutput(m, struct, formats.default_format(struct), m.origin)
    return tuple(out.values())


def _event_output(ck: Checker, path: PathKey, entry: Dict[str, Any],
                  out: Dict[str, EventOutput]) -> None:
    m = ck.maps.get(entry["events"])
    if m is None or not MAP_KINDS.lookup(m.kind).is_buffer:
        ck.not_a((*path, "events"), entry["events"], buffer_names())
        return
    assert m.value is not None
    struct = ck.structs.get(m.value.base)
    if struct is None:
        return
    if m.name in out:
        ck.err(path, f"events of '{m.name}' are already printed by an earlier entry")
    decodes = readable.check(ck, (*path, "decode"), struct, entry.get("decode", {}))
    fmt = entry.get("format") or readable.default_format(struct, decodes, ck)
    try:
        names = {f.name for f in struct.layout.fields if f.name != STACK_PID} | \
            set(readable.names(ck, decodes))
        formats.fields(ck, (*path, "format"), fmt, names, f"field of {struct.name}",
                       set(LANGUAGE_NAMES) - names, lambda field: _emit_it(struct.name, field))
        formats.try_format(
            ck, (*path, "format"), fmt,
            readable.samples(formats.sample_record(struct, ck.structs), ck, decodes),
            readable.samples(formats.sample_record(struct, ck.structs, True), ck, decodes))
    except Skip:
        return
    out[m.name] = EventOutput(m, struct, fmt, ck.origin(path), decodes)


def _emit_it(struct: str, value: str) -> str:
    name = value.rpartition(".")[2]
    return (f"a format shows the event's fields: to show {value}, give {struct} a field and "
            f"set it in the emit, e.g. set: {{{name}: {value}}}")


def map_dumps(ck: Checker) -> Tuple[MapOutput, ...]:
    out = []
    for i, entry in enumerate(ck.data.get("output", [])):
        if "map" not in entry:
            continue
        path: PathKey = ("output", i)
        m = ck.maps.get(entry["map"])
        if m is None or not MAP_KINDS.lookup(m.kind).is_table:
            ck.not_a((*path, "map"), entry["map"], "hash or array map")
            continue
        assert m.key is not None and m.value is not None
        fmt = entry.get("format", "{key}: {value}")
        samples = [{"key": formats.sample_value(m.key, ck.structs, hi),
                    "value": formats.sample_value(m.value, ck.structs, hi)}
                   for hi in (False, True)]
        try:
            formats.fields(ck, (*path, "format"), fmt, {"key", "value"}, "field of a map entry")
            formats.try_format(ck, (*path, "format"), fmt, *samples)
        except Skip:
            continue
        if "every" not in entry and entry.get("at_exit") is False:
            ck.err(path, "this map is never printed: give 'every' or leave 'at_exit' on")
        out.append(MapOutput(m, fmt, entry.get("separator", "\n"), entry.get("every"),
                             entry.get("at_exit", True), ck.origin(path)))
    return tuple(out)
