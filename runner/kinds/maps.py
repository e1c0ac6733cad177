"""Map types: one row each, read by the checker, codegen and the kernel side.

`family` groups the types that behave alike in a spec: a table (hash or array) is counted
into and dumped, a buffer carries events to user space, a prog_array holds tail-call
targets. `per_cpu` says whether a read returns one value per CPU (summed by ebpf-run);
it is a column, not a name test, so `lru_percpu_hash` would be read right too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Optional

from runner.kinds.registry import Registry

HASH, ARRAY, BUFFER, PROG_ARRAY = "hash", "array", "buffer", "prog_array"


@dataclass(frozen=True)
class MapKind:
    name: str  # the spec's `type:`
    family: str  # HASH | ARRAY | BUFFER | PROG_ARRAY
    per_cpu: bool
    declaration: str  # BCC macro; str.format with name, key, value, max, pages
    keys: FrozenSet[str]  # the spec keys it takes besides `type`
    default_key: Optional[str] = None  # tables: the key type when none is given
    default_value: Optional[str] = None  # tables: the value type when none is given
    required_key: Optional[str] = None  # arrays: the only key type allowed
    needs_max_entries: bool = False
    default_pages: int = 0  # buffers: the size when neither pages nor bytes is given
    max_record: Optional[int] = None  # bytes; perf events are built on the BPF stack
    ring: bool = False  # a BPF ring buffer: records are reserved in place

    @property
    def is_table(self) -> bool:
        """Counted into by count/add and dumped by `output: - map:`."""
        return self.family in (HASH, ARRAY)

    @property
    def is_buffer(self) -> bool:
        """A channel of events to user space: `emit` writes to it."""
        return self.family == BUFFER

    @property
    def full_reason(self) -> str:
        """Why an update into this table can fail, as the loss counter names it."""
        return "index out of range" if self.family == ARRAY else "map full"


_TABLE_KEYS = frozenset({"key", "value", "max_entries"})
_BUFFER_KEYS = frozenset({"value", "pages", "bytes"})

MAP_KINDS: Registry[MapKind] = Registry("map type")
for _m in (
    MapKind("hash", HASH, False, "BPF_HASH({name}, {key}, {value}, {max});", _TABLE_KEYS,
            default_key="u64", default_value="u64"),
    MapKind("lru_hash", HASH, False, 'BPF_TABLE("lru_hash", {key}, {value}, {name}, {max});',
            _TABLE_KEYS, default_key="u64", default_value="u64"),
    MapKind("array", ARRAY, False, "BPF_ARRAY({name}, {value}, {max});", _TABLE_KEYS,
            default_key="u32", default_value="u64", required_key="u32", needs_max_entries=True),
    MapKind("percpu_array", ARRAY, True, "BPF_PERCPU_ARRAY({name}, {value}, {max});",
            _TABLE_KEYS, default_key="u32", default_value="u64", required_key="u32",
            needs_max_entries=True),
    MapKind("percpu_hash", HASH, True, "BPF_PERCPU_HASH({name}, {key}, {value}, {max});",
            _TABLE_KEYS, default_key="u64", default_value="u64"),
    MapKind("perf_event_array", BUFFER, False,
            "BPF_PERF_OUTPUT({name});  /* {pages} pages per CPU, set when opened */",
            _BUFFER_KEYS, default_pages=64, max_record=400),
    MapKind("ringbuf", BUFFER, False, "BPF_RINGBUF_OUTPUT({name}, {pages});", _BUFFER_KEYS,
            default_pages=256, ring=True),
    MapKind("prog_array", PROG_ARRAY, False, "BPF_PROG_ARRAY({name}, {max});",
            frozenset({"max_entries"}), needs_max_entries=True),
):
    MAP_KINDS.register(_m.name, _m)

DEFAULT_MAX_ENTRIES = 10240  # as BCC's own default


def buffer_names() -> str:
    """'perf_event_array or ringbuf': for messages naming what a spec should have used."""
    return " or ".join(k.name for k in MAP_KINDS.values() if k.is_buffer)
