"""Per-CPU values reduced to one for a dump."""

from __future__ import annotations

from runner.runtime.dumps import per_cpu_total


def test_numbers_add_up():
    assert per_cpu_total([1, 2, 3]) == 6


def test_arrays_add_up_element_by_element():
    assert per_cpu_total([[1, 2], [10, 20]]) == [11, 22]


def test_structs_add_up_field_by_field_and_text_stays_per_cpu():
    values = [{"n": 1, "name": "a", "arr": [1, 0]}, {"n": 2, "name": "b", "arr": [0, 5]}]
    assert per_cpu_total(values) == {"n": 3, "name": ["a", "b"], "arr": [1, 5]}


def test_text_values_are_listed_per_cpu():
    assert per_cpu_total(["x", "y"]) == ["x", "y"]
