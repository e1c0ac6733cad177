from __future__ import annotations

import ctypes
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runner.model.aggregates import (
    AggregateError,
    AggSlotC,
    Entry,
    Histogram,
    LinearLayout,
    Log2Layout,
    Slot,
    Stats,
    build_histograms,
    build_scalars,
    combine_slots,
    histogram_of,
    linear_bucket,
    log2_bucket,
    scalar_value,
    slot_of,
    sort_entries,
    top,
)
from runner.runtime.clearing import needs_kernel_clear, since

from .util import ROOT


def test_log2_bucket_matches_bpftrace_scheme():
    # index 0: negatives, 1: zero, 2: [1], 3: [2, 4), 4: [4, 8) ...
    cases = {
        -(1 << 63): 0,
        -1: 0,
        0: 1,
        1: 2,
        2: 3,
        3: 3,
        4: 4,
        7: 4,
        8: 5,
        1023: 11,
        1024: 12,
        (1 << 32) - 1: 33,
        1 << 32: 34,
        (1 << 63) - 1: 64,
    }
    assert {v: log2_bucket(v) for v in cases} == cases


def test_log2_bounds():
    layout = Log2Layout()
    assert layout.size == 65
    assert [layout.bounds(i) for i in (0, 1, 2, 3, 4, 64)] == [
        (None, 0),
        (0, 1),
        (1, 2),
        (2, 4),
        (4, 8),
        (1 << 62, 1 << 63),
    ]
    for value in (0, 1, 5, 1000, (1 << 63) - 1):
        lower, upper = layout.bounds(layout.index(value))
        assert lower is not None and upper is not None and lower <= value < upper


def test_linear_bucket_matches_bpftrace_scheme():
    # lhist(v, 0, 50, 10): below, five inner buckets, and 50 or more in the last.
    assert [linear_bucket(v, 0, 50, 10) for v in (-3, 0, 9, 10, 49, 50, 500)] == [
        0,
        1,
        1,
        2,
        5,
        6,
        6,
    ]
    layout = LinearLayout(0, 50, 10)
    assert layout.size == 7
    assert [layout.bounds(i) for i in (0, 1, 5, 6)] == [(None, 0), (0, 10), (40, 50), (50, None)]


def test_linear_layout_refuses_nonsense():
    with pytest.raises(AggregateError, match="min < max and step > 0"):
        LinearLayout(10, 10, 1)
    with pytest.raises(AggregateError, match="min < max and step > 0"):
        LinearLayout(0, 10, 0)
    with pytest.raises(AggregateError, match=r"max - min \(10\) must be a multiple of step \(3\)"):
        LinearLayout(0, 10, 3)


def test_combine_slots_ignores_untouched_cpus():
    stats = combine_slots([Slot(0, 0, 0, 0), Slot(2, 10, 3, 7), Slot(1, -4, -4, -4)])
    assert stats == Stats(count=3, sum=6, min=-4, max=7)
    assert stats.avg == 2
    assert combine_slots([Slot(0, 0, 0, 0)]) == Stats(0, 0, None, None)


def test_avg_truncates_toward_zero_like_c():
    assert Stats(2, -7, -5, -2).avg == -3
    assert Stats(0, 0, None, None).avg == 0


def test_scalar_values():
    stats = Stats(4, 20, 1, 9)
    got = {k: scalar_value(stats, k) for k in ("count", "sum", "min", "max", "avg")}
    assert got == {"count": 4, "sum": 20, "min": 1, "max": 9, "avg": 5}
    assert scalar_value(stats, "stats") is stats
    with pytest.raises(AggregateError, match="unknown aggregation 'median'"):
        scalar_value(stats, "median")  # type: ignore[arg-type]


def test_build_histograms_sums_cpus_per_key():
    rows = [(("a",), 4, [1, 2]), (("a",), 1, [0, 1]), (("b",), 4, [5, 0])]
    hists = build_histograms(rows, Log2Layout())
    assert hists[("a",)].counts[4] == 3
    assert hists[("a",)].counts[1] == 1
    assert hists[("a",)].total == 4
    assert hists[("b",)].total == 5
    with pytest.raises(AggregateError, match=r"bucket index 65 outside 0\.\.64"):
        build_histograms([((), 65, [1])], Log2Layout())


def test_build_scalars():
    assert build_scalars([((1,), [Slot(1, 5, 5, 5), Slot(1, 6, 6, 6)])]) == {
        (1,): Stats(2, 11, 5, 6)
    }


def test_histogram_length_checked():
    with pytest.raises(AggregateError, match="3 bucket counts for a layout of 65"):
        Histogram(Log2Layout(), (0, 0, 0))


def test_sort_and_top():
    entries = [
        Entry(("read",), 10),
        Entry(("write",), 3),
        Entry(("close",), 10),
        Entry(("open",), 7),
    ]
    assert [e.key[0] for e in sort_entries(entries)] == ["write", "open", "close", "read"]
    assert [e.key[0] for e in top(entries, 2)] == ["close", "read"]
    assert top(entries, 0) == []
    assert len(top(entries, 10)) == 4
    assert [e.key[0] for e in sort_entries(entries, by="key")] == ["close", "open", "read", "write"]


def test_sort_histograms_by_total_and_mixed_keys():
    small = histogram_of([1], Log2Layout())
    big = histogram_of([1, 2, 3], Log2Layout())
    entries = [Entry((2,), big), Entry(("x",), small), Entry((1,), small)]
    assert [e.key for e in sort_entries(entries)] == [(1,), ("x",), (2,)]


def test_since_subtracts_counts_and_histograms():
    layout = LinearLayout(0, 10, 5)
    before = {("a",): 5, ("b",): 2, ("h",): histogram_of([1], layout)}
    after = {("a",): 9, ("b",): 2, ("c",): 1, ("h",): histogram_of([1, 7], layout)}
    delta = since(after, before, "count")  # type: ignore[arg-type]
    assert delta == {("a",): 4, ("c",): 1, ("h",): Histogram(layout, (0, 0, 1, 0))}


def test_since_a_count_that_went_back_was_recreated():
    layout = LinearLayout(0, 10, 5)
    before = {("a",): 50, ("h",): histogram_of([1, 1, 7], layout)}
    after = {("a",): 3, ("h",): histogram_of([1], layout)}
    assert since(after, before, "count") == {("a",): 3, ("h",): histogram_of([1], layout)}
    # A sum of negative values goes down by itself.
    assert since({("a",): -5}, {("a",): 2}, "sum") == {("a",): -7}


def test_since_on_stats_keeps_count_and_sum_only():
    delta = since({(): Stats(5, 50, 1, 20)}, {(): Stats(2, 10, 1, 5)}, "stats")
    assert delta == {(): Stats(3, 40, None, None)}
    assert needs_kernel_clear("min") and needs_kernel_clear("max")
    assert not needs_kernel_clear("count") and not needs_kernel_clear("hist")


def test_since_refuses_other_layouts():
    with pytest.raises(AggregateError, match="another layout"):
        since(
            {(): histogram_of([1], Log2Layout())},
            {(): histogram_of([1], LinearLayout(0, 10, 1))},
            "hist",
        )
    with pytest.raises(AggregateError, match="min cannot be cleared by subtraction"):
        since({}, {}, "min")


def test_stats_sort_by_average_like_bpftrace():
    entries = [Entry(("a",), Stats(10, 20, 1, 3)), Entry(("b",), Stats(1, 50, 50, 50))]
    assert [e.key for e in sort_entries(entries)] == [("a",), ("b",)]


S64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)


def _template_log2_c() -> str:
    """The hist branch of templates/action_aggregate.c.j2, as a C function of er_v."""
    text = (ROOT / "templates" / "action_aggregate.c.j2").read_text()
    block = text[text.index('{%- if g.kind == "hist" %}'):text.index('{%- elif g.kind == "lhist"')]
    lines = [line.replace("{{ p }}", "    ") for line in block.splitlines()[1:]]
    assert all("{{" not in line and "{%" not in line for line in lines), lines
    body = "\n".join(lines).replace("er_key.bucket", "bucket")
    return ("typedef unsigned long long u64; typedef long long s64;\n"
            "#include <stdio.h>\n#include <stdlib.h>\n"
            "static u64 er_log2(s64 er_v) {\n    u64 bucket;\n" + body
            + "\n    return bucket;\n}\n"
            "int main(int argc, char **argv) {\n"
            "    for (int i = 1; i < argc; i++)\n"
            "        printf(\"%llu\\n\", er_log2(strtoll(argv[i], 0, 10)));\n"
            "    return 0;\n}\n")


def test_log2_bucket_is_the_templates_c(tmp_path):
    """The kernel's rule is the template's C; compiled here and run over the edges of every
    bucket, it must give log2_bucket's index (the rule is written once in each language)."""
    src, exe = tmp_path / "log2.c", tmp_path / "log2"
    src.write_text(_template_log2_c())
    subprocess.run(["cc", "-O1", "-o", str(exe), str(src)], check=True)
    values = [-(1 << 63), -1, 0, 1, (1 << 63) - 1]
    values += [v for b in range(1, 63) for v in ((1 << b) - 1, 1 << b, (1 << b) + 1)]
    out = subprocess.run([str(exe), *map(str, values)], capture_output=True, text=True,
                         check=True).stdout.split()
    assert [int(x) for x in out] == [log2_bucket(v) for v in values]


@given(S64)
def test_log2_value_lies_in_its_bucket(v):
    lower, upper = Log2Layout().bounds(log2_bucket(v))
    assert (lower is None or lower <= v) and (upper is None or v < upper)


@given(
    st.integers(-(10**6), 10**6),
    st.integers(-1000, 1000),
    st.integers(1, 100),
    st.integers(1, 50),
)
def test_linear_value_lies_in_its_bucket(v, lo, buckets, step):
    layout = LinearLayout(lo, lo + buckets * step, step)
    index = layout.index(v)
    assert 0 <= index < layout.size
    lower, upper = layout.bounds(index)
    assert (lower is None or lower <= v) and (upper is None or v < upper)


def test_slot_ctypes_layout():
    raw = AggSlotC(3, -6, -5, 2)
    assert ctypes.sizeof(raw) == 32
    assert [AggSlotC.count.offset, AggSlotC.sum.offset, AggSlotC.min.offset] == [0, 8, 16]
    assert slot_of(raw) == Slot(3, -6, -5, 2)
