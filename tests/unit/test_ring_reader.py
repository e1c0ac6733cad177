"""The in-place ring reader's pure helpers: which records are committed, in runs."""

from __future__ import annotations

import struct

from runner.kernel.ring import _BUSY, _DISCARD, _committed, _same_prefix


def record(size: int, flags: int = 0, fill: int = 0xAB) -> bytes:
    """One ring record as the kernel lays it out: header (length | flags, page offset),
    data, padding to 8 bytes."""
    stride = (size + 8 + 7) & ~7
    return struct.pack("<II", size | flags, 0) + bytes([fill]) * size + bytes(stride - 8 - size)


def test_records_of_one_size_are_one_run():
    buf = record(12) * 5
    assert _committed(buf) == (len(buf), [(0, 12, 5, 24)])


def test_a_size_change_starts_a_new_run():
    buf = record(12) * 2 + record(20) * 3 + record(12)
    assert _committed(buf) == (len(buf), [(0, 12, 2, 24), (48, 20, 3, 32), (144, 12, 1, 24)])


def test_reading_stops_at_the_first_busy_record():
    buf = record(12) * 2 + record(12, _BUSY) + record(12)
    assert _committed(buf) == (48, [(0, 12, 2, 24)])


def test_a_busy_first_record_gives_nothing():
    assert _committed(record(16, _BUSY) + record(16)) == (0, [])


def test_discarded_records_are_consumed_and_skipped():
    buf = record(12) + record(12, _DISCARD) + record(12)
    assert _committed(buf) == (len(buf), [(0, 12, 1, 24), (48, 12, 1, 24)])


def test_a_partial_header_at_the_end_is_left_for_later():
    buf = record(12) + b"\0" * 4
    assert _committed(buf) == (24, [(0, 12, 1, 24)])


def test_same_prefix_counts_leading_equal_words():
    want = b"\x0c\0\0\0"
    for n in range(1, 9):
        heads = want * n + b"\x14\0\0\0" * (9 - n)
        assert _same_prefix(heads, want) == n
