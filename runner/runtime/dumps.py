"""Map dumps: read a map, decode keys and values, format, hand to the sink.

Per-CPU values are added up where they are numbers (see per_cpu_total). A map can hold
millions of entries, so the read asks `should_stop` as it goes: a dump at exit gives way
to a further signal.
"""

from __future__ import annotations

from typing import Any, Callable, List, Tuple

from runner.kernel.session import Kernel
from runner.model.spec import MapOutput
from runner.output.text import Sink
from runner.runtime import decode


def dump(k: Kernel, types: Any, sink: Sink, out: MapOutput,
         should_stop: Callable[[], bool]) -> None:
    """One dump; maps.DumpInterrupted if should_stop said yes on the way."""
    assert out.map.key is not None and out.map.value is not None
    dk = decode.value_decoder(types, out.map.key)
    dv = decode.value_decoder(types, out.map.value)
    entries: List[Tuple[Any, Any]] = []
    for kb, vbs in k.maps.map_items(out.map, should_stop):
        values = [dv(v) for v in vbs]
        entries.append((dk(kb), per_cpu_total(values) if len(values) > 1 else values[0]))
    text = out.separator.join(out.format.format_map({"key": key, "value": value})
                              for key, value in entries)
    sink.map_dump(out.map.name, text, entries)


def per_cpu_total(values: List[Any]) -> Any:
    """One value from a value per CPU: numbers add up (counters are what per-CPU maps are
    for), arrays element by element, structs field by field; text cannot be added, so a
    text value (or field) is shown as its list of per-CPU values."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, list, dict)):
        return list(values)
    if isinstance(first, int):
        return sum(values)
    if isinstance(first, list):
        return [per_cpu_total(list(column)) for column in zip(*values)]
    return {name: per_cpu_total([v[name] for v in values]) for name in first}
