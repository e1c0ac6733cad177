"""JSON records of aggregations: the same data as the text, typed.

    {"type": "hist", "map": "usecs", "key": {"comm": "bash"}, "unit": "us",
     "count": 12, "sum": null,
     "buckets": [{"lower": 4, "upper": 8, "count": 12}, ...]}
    {"type": "stats", "map": "lat", "key": {}, "unit": "ns",
     "count": 2, "sum": 12, "avg": 6, "min": 5, "max": 7}
    {"type": "map", "map": "syscalls", "key": {"syscall": "read"}, "unit": null,
     "kind": "count", "value": 1200}

Histogram buckets run from the first to the last one hit, like the text. `lower` is
inclusive and `upper` exclusive; null means unbounded (the below-range and above-range
buckets). `key` maps the spec's key field names to their (decoded) values.
"""

from __future__ import annotations

from typing import Dict, List, Literal, Mapping, Optional, TypedDict, Union

from runner.model.aggregates import Histogram, Stats, scalar_value

Json = Union[None, bool, int, float, str, List["Json"], Dict[str, "Json"]]


class BucketRecord(TypedDict):
    lower: Optional[int]
    upper: Optional[int]
    count: int


class HistogramRecord(TypedDict):
    type: Literal["hist"]
    map: str
    key: Dict[str, Json]
    unit: Optional[str]
    count: int
    sum: Optional[int]
    buckets: List[BucketRecord]


class StatsRecord(TypedDict):
    type: Literal["stats"]
    map: str
    key: Dict[str, Json]
    unit: Optional[str]
    count: int
    sum: int
    avg: int
    min: Optional[int]  # null: nothing recorded yet
    max: Optional[int]


class ScalarRecord(TypedDict):
    type: Literal["map"]
    map: str
    key: Dict[str, Json]
    unit: Optional[str]
    kind: Literal["count", "sum", "min", "max", "avg"]
    value: Optional[int]


def histogram_record(
    name: str, key: Mapping[str, Json], hist: Histogram, unit: Optional[str] = None
) -> HistogramRecord:
    hit = hist.hit_range()
    buckets: List[BucketRecord] = []
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
) -> StatsRecord:
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


def scalar_record(
    name: str,
    key: Mapping[str, Json],
    stats: Stats,
    kind: Literal["count", "sum", "min", "max", "avg"],
    unit: Optional[str] = None,
) -> ScalarRecord:
    value = scalar_value(stats, kind)
    assert not isinstance(value, Stats)  # kind is never "stats" here
    return {
        "type": "map",
        "map": name,
        "key": dict(key),
        "unit": unit,
        "kind": kind,
        "value": value,
    }
