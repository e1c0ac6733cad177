"""Histogram blocks against bpftrace 0.17's own output (tests/data/bpftrace), byte for byte,
and the JSON record shape."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Tuple

import pytest

from runner.model.aggregates import (
    Histogram,
    LinearLayout,
    Log2Layout,
    histogram_of,
)
from runner.output.histogram import (
    bar_length,
    draw_histogram,
    draw_histogram_map,
    linear_label,
    power_label,
)
from runner.output.records import histogram_record

DATA = Path(__file__).parent.parent / "data" / "bpftrace"
LINE = re.compile(r"^(\S.*?)\s+(\d+) \|[@ ]{52}\|$")


def golden(name: str) -> str:
    return (DATA / name).read_text()


def parse_counts(text: str) -> List[Tuple[str, int]]:
    out = []
    for line in text.splitlines():
        m = LINE.match(line)
        assert m, line
        out.append((m.group(1).rstrip(), int(m.group(2))))
    return out


def from_golden(text: str, layout) -> Histogram:
    """The counts bpftrace printed, placed at the index whose label we print: checks the
    labels as well as the bars."""
    from runner.output.histogram import range_label

    empty = Histogram(layout, (0,) * layout.size)
    index_of = {range_label(empty, i): i for i in range(layout.size)}
    counts = [0] * layout.size
    for label, count in parse_counts(text):
        counts[index_of[label]] = count
    return Histogram(layout, tuple(counts))


@pytest.mark.parametrize(
    "name,layout",
    [
        ("hist-sys-exit-read.txt", Log2Layout()),
        ("hist-constants.txt", Log2Layout()),
        ("lhist-sys-exit-read.txt", LinearLayout(0, 1000, 100)),
        ("lhist-constants.txt", LinearLayout(0, 50, 10)),
        ("lhist-big.txt", LinearLayout(0, 5000000, 1000000)),
        ("lhist-lseek.txt", LinearLayout(0, 50, 1)),
        ("hist-lseek.txt", Log2Layout()),
    ],
)
def test_same_counts_draw_as_bpftrace(name, layout):
    text = golden(name)
    assert draw_histogram(from_golden(text, layout)) == text


def lseek_counts() -> List[int]:
    return [int(n) for n in golden("lseek-counts.txt").split()]


def test_log2_buckets_agree_with_bpftrace_on_known_values():
    # hist(args->offset * 1000) over lseek offsets b, each repeated counts[b] times.
    values = [b * 1000 for b, c in enumerate(lseek_counts()) for _ in range(c)]
    assert draw_histogram(histogram_of(values, Log2Layout())) == golden("hist-lseek.txt")


def test_linear_buckets_agree_with_bpftrace_on_known_values():
    values = [b for b, c in enumerate(lseek_counts()) for _ in range(c)]
    hist = histogram_of(values, LinearLayout(0, 50, 1))
    assert draw_histogram(hist) == golden("lhist-lseek.txt")


def test_constants_program_buckets():
    # BEGIN { @l = lhist(v, 0, 50, 10) } for these v (tests/data/bpftrace/README.md)
    hist = histogram_of([-3, 0, 15, 15, 49, 50, 500], LinearLayout(0, 50, 10))
    assert draw_histogram(hist) == golden("lhist-constants.txt")
    big = histogram_of([3000000, 1500], LinearLayout(0, 5000000, 1000000))
    assert draw_histogram(big) == golden("lhist-big.txt")
    # 0.17 caps hist() at [2G, 4G): values below 2**31 agree exactly.
    small = [0, 1, 1, 3, 5, 5, 5, 1024, 1048576, 1073741824, -1]
    expected = golden("hist-constants.txt").replace(
        "[2G, 4G)               3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n", ""
    )
    drawn = draw_histogram(histogram_of(small, Log2Layout()))
    # Without the three capped values, 3 ([4, 8)) is the largest: the same bars.
    assert drawn == expected


def test_keyed_map_block():
    hists = {
        (2, "b"): histogram_of([9], Log2Layout()),
        (1, "a"): histogram_of([4], Log2Layout()),
    }
    assert draw_histogram_map("k", hists) == golden("hist-keyed-map.txt")


def test_unkeyed_map_header_has_bpftraces_trailing_space():
    text = draw_histogram_map("usecs", {(): histogram_of([5], Log2Layout())})
    assert text == (
        "@usecs: \n"
        "[4, 8)                 1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
    )


def test_empty_histogram_draws_nothing():
    assert draw_histogram(Histogram(Log2Layout(), (0,) * 65)) == ""


def test_labels():
    assert [power_label(p) for p in (0, 9, 10, 19, 20, 30, 40, 41, 62)] == [
        "1",
        "512",
        "1K",
        "512K",
        "1M",
        "1G",
        "1T",
        "2T",
        "4194304T",
    ]
    assert [linear_label(n) for n in (0, 1000, 1024, 3072, 1048576, 1049600, -2048)] == [
        "0",
        "1000",
        "1K",
        "3K",
        "1M",
        "1025K",
        "-2K",
    ]


def test_bar_length_is_single_precision():
    # 52 * 971 / 997 = 50.64..: 50 either way; the float32 arithmetic matters at exact
    # multiples, where a double and a float can fall either side of the integer.
    assert bar_length(971, 997) == 50
    assert bar_length(997, 997) == 52
    assert bar_length(0, 997) == 0
    assert bar_length(1, 0) == 0


def test_histogram_record_shape():
    hist = histogram_of([-1, 0, 5, 5, 9], Log2Layout())
    record = histogram_record("usecs", {"comm": "sh"}, hist, "us")
    assert record == {
        "type": "hist",
        "map": "usecs",
        "key": {"comm": "sh"},
        "unit": "us",
        "count": 5,
        "sum": None,
        "buckets": [
            {"lower": None, "upper": 0, "count": 1},
            {"lower": 0, "upper": 1, "count": 1},
            {"lower": 1, "upper": 2, "count": 0},
            {"lower": 2, "upper": 4, "count": 0},
            {"lower": 4, "upper": 8, "count": 2},
            {"lower": 8, "upper": 16, "count": 1},
        ],
    }
    json.dumps(record)  # plain JSON types only


def test_linear_record_has_open_ends():
    hist = histogram_of([-1, 60], LinearLayout(0, 50, 10))
    buckets = histogram_record("l", {}, hist)["buckets"]
    assert buckets[0] == {"lower": None, "upper": 0, "count": 1}
    assert buckets[-1] == {"lower": 50, "upper": None, "count": 1}
    assert len(buckets) == 7
