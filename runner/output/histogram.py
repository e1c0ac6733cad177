"""Histograms and tables drawn for people, and the JSON records that carry the same data.

Histogram blocks are bpftrace 0.17's text output byte for byte (src/output.cpp,
TextOutput::hist_to_str and lhist_to_str): a range label left-aligned in 16 columns,
the count right-aligned in 8, then a bar of '@' in a 52-wide frame scaled to the largest
bucket. Only the buckets from the first to the last one hit are printed, zeros between
them included.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Dict, List, Literal, Mapping, Optional, Sequence, Tuple, Union

from runner.runtime.aggregates import Histogram, Key, LinearLayout, Stats

BAR_WIDTH = 52

Unit = Literal["ns", "us", "ms", "s", "bytes"]
UNITS: Tuple[str, ...] = ("ns", "us", "ms", "s", "bytes")


def _f32(x: float) -> float:
    return float(struct.unpack("f", struct.pack("f", x))[0])


def bar_length(count: int, largest: int) -> int:
    """bpftrace computes `count / (float)max * 52` in single precision and truncates; doing
    the same in float32 keeps every bar the same length as its bars (a double can round
    the other side of an integer)."""
    if largest <= 0:
        return 0
    return int(_f32(_f32(_f32(count) / _f32(largest)) * _f32(BAR_WIDTH)))


def power_label(power: int) -> str:
    """2**power as bpftrace labels it: 1, 512, 1K, 2M, 4G, 8T (TextOutput::hist_index_label)."""
    for shift, suffix in ((40, "T"), (30, "G"), (20, "M"), (10, "K")):
        if power >= shift:
            return f"{1 << (power - shift)}{suffix}"
    return str(1 << power)


def linear_label(number: int) -> str:
    """A linear bound as bpftrace labels it: an exact multiple of 1M or 1K gets the suffix
    (TextOutput::lhist_index_label). C's % keeps the sign, so -2048 is -2K as well."""
    if number == 0:
        return "0"
    for unit, suffix in ((1 << 20, "M"), (1 << 10, "K")):
        if abs(number) % unit == 0:
            return f"{number // unit}{suffix}"
    return str(number)


def range_label(hist: Histogram, index: int) -> str:
    layout = hist.layout
    if isinstance(layout, LinearLayout):
        if index == 0:
            return f"(..., {linear_label(layout.lo)})"
        if index == layout.inner + 1:
            return f"[{linear_label(layout.hi)}, ...)"
        low, high = layout.bounds(index)
        assert low is not None and high is not None  # inner buckets are bounded
        return f"[{linear_label(low)}, {linear_label(high)})"
    if index == 0:
        return "(..., 0)"
    if index == 1:
        return "[0]"
    if index == 2:
        return "[1]"
    return f"[{power_label(index - 2)}, {power_label(index - 1)})"


def draw_histogram(hist: Histogram) -> str:
    """The bucket lines of one histogram, each ending in a newline; "" when empty."""
    hit = hist.hit_range()
    if hit is None:
        return ""
    largest = max(hist.counts)
    lines = []
    for index in range(hit[0], hit[1] + 1):
        count = hist.counts[index]
        bar = "@" * bar_length(count, largest)
        lines.append(f"{range_label(hist, index):<16}{count:>8} |{bar:<{BAR_WIDTH}}|\n")
    return "".join(lines)


def key_text(key: Key) -> str:
    """`[1, a]` as bpftrace writes a key; "" for no key. Parts are shown as given: decode
    them (runner.kinds.decoders) before, which also makes them safe for a terminal."""
    return f"[{', '.join(str(part) for part in key)}]" if key else ""


def draw_histogram_map(name: str, hists: Mapping[Key, Histogram]) -> str:
    """A hist map as bpftrace prints it at exit: per key `@name[key]: ` (with its trailing
    space), the bucket lines, a blank line; keys by ascending total count."""
    order = sorted(hists.items(), key=lambda kv: (kv[1].total, key_text(kv[0])))
    return "".join(f"@{name}{key_text(key)}: \n{draw_histogram(hist)}\n" for key, hist in order)


# ---- tables -------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    title: str
    unit: Optional[str] = None  # shown in the header: "LATENCY (us)"
    numeric: bool = False  # numbers are right-aligned, text left-aligned

    @property
    def header(self) -> str:
        return f"{self.title} ({self.unit})" if self.unit else self.title


Cell = Union[str, int, float, None]


def format_table(columns: Sequence[Column], rows: Sequence[Sequence[Cell]]) -> str:
    """Columns two spaces apart, each as wide as its widest cell; no trailing spaces."""
    texts = [[_cell_text(cell) for cell in row] for row in rows]
    for row in texts:
        if len(row) != len(columns):
            raise ValueError(f"row has {len(row)} cells for {len(columns)} columns")
    widths = [
        max([len(col.header)] + [len(row[i]) for row in texts]) for i, col in enumerate(columns)
    ]
    lines = []
    for row in [[c.header for c in columns], *texts]:
        cells = [
            text.rjust(width) if col.numeric else text.ljust(width)
            for text, width, col in zip(row, widths, columns)
        ]
        lines.append("  ".join(cells).rstrip() + "\n")
    return "".join(lines)


def _cell_text(cell: Cell) -> str:
    if cell is None:
        return "-"
    if isinstance(cell, float):
        return f"{cell:.2f}"
    return str(cell)


def stats_columns(unit: Optional[str] = None) -> List[Column]:
    return [
        Column(name.upper(), unit if name != "count" else None, numeric=True)
        for name in ("count", "avg", "min", "max", "sum")
    ]


def stats_cells(stats: Stats) -> List[Cell]:
    return [stats.count, stats.avg, stats.min, stats.max, stats.sum]


# ---- JSON records ---------------------------------------------------------------------
#
# {"type": "hist", "map": "usecs", "key": {"comm": "bash"}, "unit": "us",
#  "count": 12, "sum": null,
#  "buckets": [{"lower": 4, "upper": 8, "count": 12}, ...]}
#
# Buckets from the first to the last hit, like the text. `lower` is inclusive and
# `upper` exclusive; null means unbounded (the below-range and above-range buckets).

Json = Union[None, bool, int, float, str, List["Json"], Dict[str, "Json"]]


def histogram_record(
    name: str, key: Mapping[str, Json], hist: Histogram, unit: Optional[str] = None
) -> Dict[str, Json]:
    hit = hist.hit_range()
    buckets: List[Json] = []
    if hit is not None:
        for bucket in hist.buckets()[hit[0] : hit[1] + 1]:
            buckets.append({"lower": bucket.lower, "upper": bucket.upper, "count": bucket.count})
    return {
        "type": "hist",
        "map": name,
        "key": dict(key),
        "unit": unit,
        "count": hist.total,
        "sum": hist.sum,
        "buckets": buckets,
    }


def stats_record(
    name: str, key: Mapping[str, Json], stats: Stats, unit: Optional[str] = None
) -> Dict[str, Json]:
    """{"type": "stats", ..., "count", "sum", "avg", "min", "max"}: min/max null when empty."""
    return {
        "type": "stats",
        "map": name,
        "key": dict(key),
        "unit": unit,
        "count": stats.count,
        "sum": stats.sum,
        "avg": stats.avg,
        "min": stats.min,
        "max": stats.max,
    }
