"""Scalar aggregations for people: aligned tables and bpftrace's `@name[key]: value` lines
(their JSON records: runner.output.records)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple, Union

from runner.kinds.decoders.text import display_width, safe_text
from runner.model.aggregates import Entry, Key, ScalarKind, Stats, scalar_value
from runner.output.histogram import key_text

# The units a header may name; values are shown in the unit they were recorded in.
UNITS: Tuple[str, ...] = ("ns", "us", "ms", "s", "bytes")


@dataclass(frozen=True)
class Column:
    title: str
    unit: Optional[str] = None  # shown in the header: "LATENCY (us)"
    numeric: bool = False  # numbers are right-aligned, text left-aligned

    def __post_init__(self) -> None:
        if self.unit is not None and self.unit not in UNITS:
            raise ValueError(f"unit {self.unit!r}; known: {', '.join(UNITS)}")

    @property
    def header(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit else self.title


Cell = Union[str, int, float, None]


def format_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> str:
    """Columns two spaces apart, each as wide as its widest cell on a terminal; no trailing
    spaces. Text cells are escaped for the terminal."""
    texts = [[_cell_text(cell) for cell in row] for row in rows]
    for row in texts:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells for {len(columns)} columns")
    header = [c.header for c in columns]
    widths = [max(display_width(row[i]) for row in [header, *texts]) for i in range(len(columns))]
    lines = []
    for row in [header, *texts]:
        cells = []
        for text, width, col in zip(row, widths, columns):
            pad = " " * (width - display_width(text))
            cells.append(pad + text if col.numeric else text + pad)
        lines.append("  ".join(cells).rstrip() + "\n")
    return "".join(lines)


def _cell_text(cell: Cell) -> str:
    if cell is None:
        return "-"  # min/max before the first event
    if isinstance(cell, float):
        return f"{cell:.2f}"
    return safe_text(str(cell))


STATS_FIELDS = ("count", "avg", "min", "max", "sum")


def stats_columns(unit: Optional[str] = None) -> List[Column]:
    # A count has no unit; the others are in the values' unit.
    return [Column(f.upper(), None if f == "count" else unit, numeric=True) for f in STATS_FIELDS]


def stats_cells(stats: Stats) -> List[Cell]:
    return [stats.count, stats.avg, stats.min, stats.max, stats.sum]


def entries_table(
    key_columns: Sequence[str],
    entries: Sequence[Entry],
    kind: ScalarKind,
    unit: Optional[str] = None,
) -> str:
    """One row per entry, in the order given (sort_entries/top first): the key's parts,
    then the value, or the five stats columns for kind "stats"."""
    columns = [Column(title) for title in key_columns]
    if kind == "stats":
        columns += stats_columns(unit)
    else:
        columns.append(Column(kind.upper(), None if kind == "count" else unit, numeric=True))
    rows: List[List[Cell]] = []
    for entry in entries:
        if len(entry.key) != len(key_columns):
            raise ValueError(f"key {entry.key!r} for {len(key_columns)} key columns")
        cells: List[Cell] = [str(part) for part in entry.key]
        if kind == "stats":
            assert isinstance(entry.value, Stats)
            cells += stats_cells(entry.value)
        else:
            value = entry.value
            assert value is None or isinstance(value, int)
            cells.append(value)
        rows.append(cells)
    return format_table(columns, rows)


def draw_scalar_map(name: str, values: Mapping[Key, Stats], kind: ScalarKind) -> str:
    """A count/sum/min/max/avg/stats map as bpftrace 0.17 prints it at exit: one
    `@name[key]: value` line per key, ascending by the value shown (avg and stats by the
    average), `count 2, average 6, total 12` for stats; avg and stats maps are followed by
    a blank line, the others not (TextOutput::map and map_stats)."""
    lines = []
    for key, stats in sorted(values.items(), key=lambda kv: _bpftrace_order(kv, kind)):
        if kind == "stats":
            shown = f"count {stats.count}, average {stats.avg}, total {stats.sum}"
        else:
            shown = str(scalar_value(stats, kind))
        lines.append(f"@{name}{key_text(key)}: {shown}\n")
    if kind in ("avg", "stats"):
        lines.append("\n")
    return "".join(lines)


def _bpftrace_order(item: Tuple[Key, Stats], kind: ScalarKind) -> Tuple[int, str]:
    key, stats = item
    value = scalar_value(stats, "avg" if kind == "stats" else kind)
    assert not isinstance(value, Stats)
    return (value if value is not None else -(1 << 64), key_text(key))
