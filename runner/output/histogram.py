"""Histograms drawn for people (their JSON record: runner.output.records).

Histogram blocks are bpftrace 0.17's text output byte for byte (src/output.cpp,
TextOutput::hist_to_str and lhist_to_str): a range label left-aligned in 16 columns,
the count right-aligned in 8, then a bar of '@' in a 52-wide frame scaled to the largest
bucket. Only the buckets from the first to the last one hit are printed, zeros between
them included.
"""

from __future__ import annotations

import struct
from typing import Mapping

from runner.kinds.decoders.text import safe_text
from runner.model.aggregates import Histogram, Key, LinearLayout

BAR_WIDTH = 52


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
    """`[1, a]` as bpftrace writes a key; "" for no key. Parts are shown as given (decode
    them before: runner.kinds.decoders), escaped for the terminal: a comm is anything."""
    return f"[{', '.join(safe_text(str(part)) for part in key)}]" if key else ""


def draw_histogram_map(name: str, hists: Mapping[Key, Histogram]) -> str:
    """A hist map as bpftrace prints it at exit: per key `@name[key]: ` (with its trailing
    space), the bucket lines, a blank line; keys by ascending total count."""
    order = sorted(hists.items(), key=lambda kv: (kv[1].total, key_text(kv[0])))
    return "".join(f"@{name}{key_text(key)}: \n{draw_histogram(hist)}\n" for key, hist in order)
