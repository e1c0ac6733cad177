"""Scalar maps: aligned tables, bpftrace's `@name[key]: value` lines (checked against
bpftrace 0.17's output of tests/data/bpftrace/constants.bt), and JSON records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runner.model.aggregates import Entry, Slot, Stats, build_scalars, combine_slots, top
from runner.output.records import scalar_record, stats_record
from runner.output.tables import (
    Column,
    draw_scalar_map,
    entries_table,
    format_table,
    stats_cells,
    stats_columns,
)

CONSTANTS = (Path(__file__).parent.parent / "data" / "bpftrace" / "constants.txt").read_text()


def recorded(*values: int) -> Stats:
    """What the kernel's slots hold after recording `values` on one CPU."""
    return combine_slots([Slot(len(values), sum(values), min(values), max(values))])


@pytest.mark.parametrize(
    "name,kind,values",
    [
        ("c", "count", {("x",): recorded(1), ("y",): recorded(1, 1)}),
        ("s", "stats", {(): recorded(5, 7)}),
        ("a", "avg", {(): recorded(3, 4)}),
        ("mn", "min", {(): recorded(5, -3)}),
        ("mx", "max", {(): recorded(9)}),
        ("sum", "sum", {(): recorded(10)}),
    ],
)
def test_scalar_maps_print_as_bpftrace(name, kind, values):
    text = draw_scalar_map(name, values, kind)
    assert text in CONSTANTS
    assert text.startswith(f"@{name}")
    # The whole block: what follows it in bpftrace's output is the next map.
    after = CONSTANTS[CONSTANTS.index(text) + len(text) :]
    assert after == "" or after.startswith("@")


def test_count_map_sorts_ascending_by_value():
    values = {("read",): recorded(*[1] * 9), ("open",): recorded(1), ("close",): recorded(1)}
    assert draw_scalar_map("c", values, "count") == "@c[close]: 1\n@c[open]: 1\n@c[read]: 9\n"


def test_table_alignment_and_units():
    columns = [Column("SYSCALL"), Column("COUNT", numeric=True), Column("LAT", "us", True)]
    rows = [["read", 1200, 3.5], ["getppid", 7, None]]
    assert format_table(columns, rows) == (
        "SYSCALL  COUNT  LAT (us)\nread      1200      3.50\ngetppid      7         -\n"
    )


def test_unknown_unit_is_refused():
    with pytest.raises(ValueError, match="unit 'usec'; known: ns, us, ms, s, bytes"):
        Column("LAT", "usec")


def test_stats_table_row():
    stats = Stats(count=3, sum=-7, min=-5, max=1)
    text = format_table(stats_columns("ns"), [stats_cells(stats)])
    assert text == (
        "COUNT  AVG (ns)  MIN (ns)  MAX (ns)  SUM (ns)\n"
        "    3        -2        -5         1        -7\n"
    )


def test_table_refuses_ragged_rows():
    with pytest.raises(ValueError, match="row has 1 cells for 2 columns"):
        format_table([Column("A"), Column("B")], [["x"]])


def test_top_entries_as_a_table():
    scalars = build_scalars(
        [
            (("read", 10), [Slot(7, 7, 1, 1), Slot(5, 5, 1, 1)]),
            (("write", 10), [Slot(3, 3, 1, 1)]),
            (("getppid", 22), [Slot(40, 40, 1, 1)]),
        ]
    )
    entries = [Entry(key, stats.count) for key, stats in scalars.items()]
    assert entries_table(["SYSCALL", "PID"], top(entries, 2), "count") == (
        "SYSCALL  PID  COUNT\nread     10      12\ngetppid  22      40\n"
    )


def test_stats_entries_table():
    entries = [Entry(("sh",), Stats(2, 3000, 1000, 2000))]
    assert entries_table(["COMM"], entries, "stats", "ns") == (
        "COMM  COUNT  AVG (ns)  MIN (ns)  MAX (ns)  SUM (ns)\n"
        "sh        2      1500      1000      2000      3000\n"
    )
    with pytest.raises(ValueError, match="for 2 key columns"):
        entries_table(["COMM", "PID"], entries, "stats")


def test_records():
    stats = Stats(2, 12, 5, 7)
    assert stats_record("s", {}, stats, "bytes") == {
        "type": "stats", "map": "s", "key": {}, "unit": "bytes",
        "count": 2, "sum": 12, "avg": 6, "min": 5, "max": 7,
    }  # fmt: skip
    record = scalar_record("syscalls", {"syscall": "read"}, stats, "count")
    assert record == {
        "type": "map", "map": "syscalls", "key": {"syscall": "read"}, "unit": None,
        "kind": "count", "value": 2,
    }  # fmt: skip
    assert scalar_record("m", {}, Stats(0, 0, None, None), "min")["value"] is None
    json.dumps(record)


def test_cells_are_escaped_and_wide_characters_aligned():
    columns = [Column("COMM"), Column("COUNT", numeric=True)]
    text = format_table(columns, [["日本語", 1], ["a\x1b[2Jb", 22]])
    assert text == ("COMM       COUNT\n日本語         1\na\\x1b[2Jb     22\n")


def test_keys_are_escaped_in_bpftrace_lines():
    assert draw_scalar_map("c", {("evil\n",): recorded(1)}, "count") == "@c[evil\\x0a]: 1\n"
