"""Aggregations combined in user space: what the kernel counted per CPU, made into values.

This module reads nothing itself: it takes the rows the generated ctypes code decoded from
the two map shapes templates/action_aggregate.c.j2 keeps.

- Scalar aggregations (count, sum, min, max, avg, stats): a per-CPU hash (a per-CPU array of
  one entry when the spec has no key) from the spec's key struct to `struct er_agg_slot`
  (AggSlotC below is its ctypes twin, 32 bytes). Each CPU updates its own slot without
  atomics; a fresh slot is all zeros, so the kernel sets min and max on a slot's first value
  rather than comparing with 0. combine_slots() folds one Slot per CPU, skipping slots whose
  count is 0.
- Histograms (hist: power of two, lhist: linear): a per-CPU hash keyed by the spec's key
  fields plus a u64 bucket (last), whose value is a count; only buckets that were hit exist,
  as in bpftrace's hist maps. The kernel computes the bucket index by the rule of
  log2_bucket() and linear_bucket() below (the template spells the same rule in C;
  tests/unit/test_aggregates.py holds the two to each other). The bucket ~0 holds the
  values' sum when the spec exports the histogram to Prometheus (Histogram.sum).
  build_histograms() folds the rows (key, bucket, per-CPU counts) into one Histogram per key.

Keys reach this module as tuples of decoded values, `()` when the spec has none.
"""

from __future__ import annotations

import ctypes
import heapq
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Literal, Optional, Sequence, Tuple, Union

Key = Tuple[object, ...]

ScalarKind = Literal["count", "sum", "min", "max", "avg", "stats"]
SCALAR_KINDS: Tuple[ScalarKind, ...] = ("count", "sum", "min", "max", "avg", "stats")


class AggregateError(ValueError):
    """A layout that cannot work (the checker reports the spec's at its location first),
    or a row from the kernel that does not fit its layout: a bug in the generated code,
    so it is loud."""


@dataclass(frozen=True)
class Slot:
    """One CPU's struct agg_slot."""

    count: int
    sum: int
    min: int
    max: int


class AggSlotC(ctypes.Structure):
    """struct agg_slot as the kernel writes it."""

    _fields_ = [
        ("count", ctypes.c_uint64),
        ("sum", ctypes.c_int64),
        ("min", ctypes.c_int64),
        ("max", ctypes.c_int64),
    ]


assert ctypes.sizeof(AggSlotC) == 32, "struct agg_slot is 32 bytes in the C"


def slot_of(raw: AggSlotC) -> Slot:
    return Slot(raw.count, raw.sum, raw.min, raw.max)


@dataclass(frozen=True)
class Stats:
    """All CPUs' slots folded. min and max are None when nothing was counted."""

    count: int
    sum: int
    min: Optional[int]
    max: Optional[int]

    @property
    def avg(self) -> int:
        """The integer average, truncated toward zero like bpftrace's (total / count in C)."""
        if self.count == 0:
            return 0
        quotient = abs(self.sum) // self.count
        return quotient if self.sum >= 0 else -quotient


def combine_slots(per_cpu: Iterable[Slot]) -> Stats:
    count = total = 0
    lows: List[int] = []
    highs: List[int] = []
    for slot in per_cpu:
        if slot.count == 0:
            continue  # an untouched CPU: its zero min/max mean nothing
        count += slot.count
        total += slot.sum
        lows.append(slot.min)
        highs.append(slot.max)
    return Stats(count, total, min(lows) if lows else None, max(highs) if highs else None)


_SLOT = struct.Struct("=Qqqq")  # struct agg_slot, as AggSlotC


def fold_slots(per_cpu: Iterable[bytes]) -> Stats:
    """combine_slots of the per-CPU slots as the kernel gives them (bytes), without a Slot
    per CPU: a dump may fold a million keys."""
    count = total = 0
    low: Optional[int] = None
    high: Optional[int] = None
    for raw in per_cpu:
        n, s, lo, hi = _SLOT.unpack_from(raw)
        if n == 0:
            continue  # an untouched CPU: its zero min/max mean nothing
        count += n
        total += s
        low = lo if low is None or lo < low else low
        high = hi if high is None or hi > high else high
    return Stats(count, total, low, high)


def scalar_value(stats: Stats, kind: ScalarKind) -> Union[int, Stats, None]:
    """The value an aggregation of `kind` shows; min/max are None before the first event."""
    if kind == "count":
        return stats.count
    if kind == "sum":
        return stats.sum
    if kind == "min":
        return stats.min
    if kind == "max":
        return stats.max
    if kind == "avg":
        return stats.avg
    if kind == "stats":
        return stats
    raise AggregateError(f"unknown aggregation {kind!r}; known: {', '.join(SCALAR_KINDS)}")


# ---- histogram bucket schemes ------------------------------------------------------


def log2_bucket(value: int) -> int:
    """bpftrace's hist() index: 0 for negatives, 1 for 0, then 2 + floor(log2(v)), so
    1 -> 2, 2..3 -> 3, 4..7 -> 4. Values are s64: the last index is 2 + 62 = 64.
    (bpftrace 0.17 stops at 2 + 31: it puts everything from 2**31 up in [2G, 4G);
    later versions, and this, use the full 64 bits.)"""
    if value < 0:
        return 0
    if value == 0:
        return 1
    return 1 + value.bit_length()


def linear_bucket(value: int, lo: int, hi: int, step: int) -> int:
    """bpftrace's lhist() index: 0 below lo, 1 + (v - lo) // step inside, and
    1 + (hi - lo) // step from hi up (bpftrace's overflow test is v > hi, but v == hi
    computes the same index)."""
    if value < lo:
        return 0
    if value > hi:
        return 1 + (hi - lo) // step
    return 1 + (value - lo) // step


@dataclass(frozen=True)
class Log2Layout:
    """Buckets of hist(): index 0 (.., 0), 1 [0], 2 [1], i >= 3 [2**(i-2), 2**(i-1))."""

    kind: Literal["log2"] = "log2"

    @property
    def size(self) -> int:
        return 65

    def index(self, value: int) -> int:
        return log2_bucket(value)

    def bounds(self, index: int) -> Tuple[Optional[int], Optional[int]]:
        """[lower, upper): lower inclusive, upper exclusive; None is unbounded."""
        _check_index(index, self.size)
        if index == 0:
            return None, 0
        if index == 1:
            return 0, 1
        return 1 << (index - 2), 1 << (index - 1)


@dataclass(frozen=True)
class LinearLayout:
    """Buckets of lhist(lo, hi, step): index 0 (.., lo), then [lo + (i-1)*step, lo + i*step)
    for i in 1..n, and index n + 1 [hi, ..) where n = (hi - lo) // step."""

    lo: int
    hi: int
    step: int
    kind: Literal["linear"] = "linear"

    def __post_init__(self) -> None:
        if self.step <= 0 or self.hi <= self.lo:
            raise AggregateError(
                f"linear histogram needs min < max and step > 0, got "
                f"min={self.lo} max={self.hi} step={self.step}"
            )
        # Otherwise values just below max would land in the [max, ..) bucket, as they do
        # in bpftrace, whose label then lies.
        if (self.hi - self.lo) % self.step:
            raise AggregateError(
                f"linear histogram: max - min ({self.hi - self.lo}) must be a multiple of "
                f"step ({self.step})"
            )

    @property
    def inner(self) -> int:
        return (self.hi - self.lo) // self.step

    @property
    def size(self) -> int:
        return self.inner + 2

    def index(self, value: int) -> int:
        return linear_bucket(value, self.lo, self.hi, self.step)

    def bounds(self, index: int) -> Tuple[Optional[int], Optional[int]]:
        _check_index(index, self.size)
        if index == 0:
            return None, self.lo
        if index == self.inner + 1:
            return self.hi, None
        return self.lo + (index - 1) * self.step, self.lo + index * self.step


Layout = Union[Log2Layout, LinearLayout]


def _check_index(index: int, size: int) -> None:
    if not 0 <= index < size:
        raise AggregateError(f"bucket index {index} outside 0..{size - 1}")


@dataclass(frozen=True)
class Bucket:
    lower: Optional[int]  # inclusive; None: no lower bound
    upper: Optional[int]  # exclusive; None: no upper bound
    count: int


@dataclass(frozen=True)
class Histogram:
    layout: Layout
    counts: Tuple[int, ...]  # one per bucket index, len == layout.size
    sum: Optional[int] = None  # the values' sum when the kernel keeps one (Prometheus _sum)

    def __post_init__(self) -> None:
        if len(self.counts) != self.layout.size:
            raise AggregateError(
                f"{len(self.counts)} bucket counts for a layout of {self.layout.size}"
            )

    @property
    def total(self) -> int:
        return sum(self.counts)

    def buckets(self) -> Tuple[Bucket, ...]:
        return tuple(Bucket(*self.layout.bounds(i), count) for i, count in enumerate(self.counts))

    def hit_range(self) -> Optional[Tuple[int, int]]:
        """First and last index with a count, as bpftrace prints them; None when empty."""
        hit = [i for i, c in enumerate(self.counts) if c]
        return (hit[0], hit[-1]) if hit else None


def histogram_of(values: Iterable[int], layout: Layout) -> Histogram:
    """The histogram the kernel would build for `values` (tests, and fake data)."""
    counts = [0] * layout.size
    for value in values:
        counts[layout.index(value)] += 1
    return Histogram(layout, tuple(counts))


def build_histograms(
    rows: Iterable[Tuple[Key, int, Sequence[int]]], layout: Layout
) -> Dict[Key, Histogram]:
    """Rows of the hist map, (key, bucket index, per-CPU counts), folded per key."""
    per_key: Dict[Key, List[int]] = {}
    for key, index, per_cpu in rows:
        _check_index(index, layout.size)
        counts = per_key.setdefault(key, [0] * layout.size)
        counts[index] += sum(per_cpu)
    return {key: Histogram(layout, tuple(counts)) for key, counts in per_key.items()}


def build_scalars(rows: Iterable[Tuple[Key, Sequence[Slot]]]) -> Dict[Key, Stats]:
    """Rows of a scalar aggregation map, (key, per-CPU slots), folded per key."""
    return {key: combine_slots(slots) for key, slots in rows}


# ---- what a dump shows ---------------------------------------------------------------

Value = Union[int, None, Stats, Histogram]


@dataclass(frozen=True)
class Entry:
    key: Key
    value: Value


def rank(value: Value) -> int:
    """What "largest" means per value, as bpftrace sorts: the number itself, a histogram's
    total count, a stats value's average; None (no min yet) is lowest."""
    if value is None:
        return -(1 << 64)
    if isinstance(value, Histogram):
        return value.total
    if isinstance(value, Stats):
        return value.avg
    return value


def sort_entries(entries: Iterable[Entry], by: Literal["value", "key"] = "value") -> List[Entry]:
    """Ascending like bpftrace, so the largest value is printed last, next to the prompt.
    Ties (and by="key") order by the key's text, so a dump is the same run after run."""
    items = list(entries)
    if by == "key":
        return sorted(items, key=lambda e: _key_order(e.key))
    return sorted(items, key=lambda e: (rank(e.value), _key_order(e.key)))


def top(entries: Iterable[Entry], n: int) -> List[Entry]:
    """The n largest, still ascending (bpftrace's print(@m, n))."""
    if n < 0:
        raise AggregateError(f"top needs n >= 0, got {n}")
    # nlargest: n log n of the kept ones, not a sort of a million keys to keep ten.
    largest = heapq.nlargest(n, entries, key=lambda e: (rank(e.value), _key_order(e.key)))
    largest.reverse()
    return largest


def _key_order(key: Key) -> Tuple[Tuple[int, object], ...]:
    # Numbers before text, numbers by value: mixed key types still sort without TypeError.
    return tuple((0, part) if isinstance(part, int) else (1, str(part)) for part in key)
