"""Map reads: per-CPU kinds give a value per CPU; a long read gives way to a stop."""

from __future__ import annotations

import ctypes as ct

import pytest

from runner.kernel.maps import CHECK_EVERY, PER_CPU_KINDS, DumpInterrupted, map_items
from runner.model.spec import Map


class FakeTable:
    """What BCC's tables give: a per-CPU table of a scalar yields a ctypes array, whose
    elements Python reads as plain ints."""

    sLeaf = ct.c_uint64

    def __init__(self, n: int, per_cpu: bool):
        self.n, self.per_cpu = n, per_cpu

    def iteritems(self):
        for i in range(self.n):
            value = (ct.c_uint64 * 2)(i, 1) if self.per_cpu else ct.c_uint64(i)
            yield ct.c_uint32(i), value


def fake_map(kind: str) -> Map:
    return Map("m", kind, None, None, 10, 0, "maps.m (line 1)")


@pytest.mark.parametrize("kind", sorted(PER_CPU_KINDS))
def test_per_cpu_kinds_give_one_value_per_cpu(kind):
    items = list(map_items({b"m": FakeTable(3, True)}, fake_map(kind), lambda: False))
    assert [len(values) for _, values in items] == [2, 2, 2]
    assert items[2][1] == [(2).to_bytes(8, "little"), (1).to_bytes(8, "little")]


def test_per_cpu_comes_from_the_map_type_table():  # not a name test: lru_hash is not per-CPU
    from runner.kinds.maps import MAP_KINDS

    assert {k.name for k in MAP_KINDS.values() if k.per_cpu} == PER_CPU_KINDS
    assert {"percpu_hash", "percpu_array"} <= PER_CPU_KINDS and "lru_hash" not in PER_CPU_KINDS


def test_a_long_read_stops_when_asked():
    asked = []

    def should_stop() -> bool:
        asked.append(1)
        return True

    table = FakeTable(10 * CHECK_EVERY, False)
    with pytest.raises(DumpInterrupted, match=f"stopped after {CHECK_EVERY} entries"):
        for _ in map_items({b"m": table}, fake_map("hash"), should_stop):
            pass
    assert asked == [1]
