"""Perf events a probe can sample on: `profile:` (a CPU clock at a frequency or an interval,
on every CPU), `software:` and `hardware:` events by name (bpftrace's names and aliases),
every COUNT occurrences.

A target is bpftrace's text after the probe type, with optional filters:

    profile: hz:99               software: page-faults:100     hardware: cycles:1000000
    profile: "ms:10 cpu=0"       software: "context-switches pid=1234"

The checker parses it (`parse`, errors name what is wrong); the kernel stage parses the
same text again to attach (runner/kernel/attach.py), so the model carries only the text. A
number written `{params.NAME}` is filled in before either parses (runner/check/params.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Tuple

# linux/perf_event.h: perf_type_id and the config numbers of each type.
TYPE_HARDWARE = 0
TYPE_SOFTWARE = 1
SW_CPU_CLOCK = 0


@dataclass(frozen=True)
class Event:
    name: str  # the canonical name (bpftrace's first)
    config: int
    default_count: int  # bpftrace's default period when the target gives none


def _table(rows: Tuple[Tuple[Tuple[str, ...], int, int], ...]) -> Dict[str, Event]:
    out = {}
    for names, config, count in rows:
        for n in names:
            out[n] = Event(names[0], config, count)
    return out


SOFTWARE = _table((
    (("cpu-clock", "cpu"), 0, 1_000_000),
    (("task-clock",), 1, 1_000_000),
    (("page-faults", "faults"), 2, 100),
    (("context-switches", "cs"), 3, 1000),
    (("cpu-migrations",), 4, 1),
    (("minor-faults",), 5, 100),
    (("major-faults",), 6, 1),
    (("alignment-faults",), 7, 1),
    (("emulation-faults",), 8, 1),
    (("dummy",), 9, 1),
))
HARDWARE = _table((
    (("cpu-cycles", "cycles"), 0, 1_000_000),
    (("instructions",), 1, 1_000_000),
    (("cache-references",), 2, 1_000_000),
    (("cache-misses",), 3, 1_000_000),
    (("branch-instructions", "branches"), 4, 100_000),
    (("branch-misses",), 5, 100_000),
    (("bus-cycles",), 6, 100_000),
    (("frontend-stalls",), 7, 1_000_000),
    (("backend-stalls",), 8, 1_000_000),
    (("ref-cycles",), 9, 1_000_000),
))
FAMILIES = {"software": (TYPE_SOFTWARE, SOFTWARE), "hardware": (TYPE_HARDWARE, HARDWARE)}
# profile's units: per second (a frequency) or the interval between samples.
PROFILE_UNITS = {"hz": None, "s": 1_000_000_000, "ms": 1_000_000, "us": 1_000}
MAX_HZ = 10_000  # above this the sampling itself is the workload (bpftrace allows more)
MAX_COUNT = 1 << 62

_FILTER = re.compile(r" (cpu|pid)=([0-9]{1,7})")


@dataclass(frozen=True)
class PerfEvent:
    """What to open: perf_event_open's type and config, a frequency or a period, and the
    CPU and process it counts on (-1: every CPU / every process)."""

    type: int
    config: int
    freq: int  # samples a second (0: use period)
    period: int  # events between samples (0: use freq)
    cpu: int = -1
    pid: int = -1
    family: str = "software"
    event: str = "cpu-clock"


class PerfEventError(ValueError):
    """A target that names no event or count we can open; the message says why."""


def parse(option: str, target: str) -> PerfEvent:
    """The event of `option: target` (option: profile, software or hardware)."""
    head, filters = _split_filters(target)
    if option == "profile":
        return _profile(head, filters)
    type_, table = FAMILIES[option]
    name, _, count = head.partition(":")
    event = table.get(name)
    if event is None:
        raise PerfEventError(f"unknown {option} event '{name}'; known: "
                             + ", ".join(sorted({e.name for e in table.values()})))
    period = _number(count, "count", MAX_COUNT) if count else event.default_count
    return PerfEvent(type_, event.config, 0, period, filters.get("cpu", -1),
                     filters.get("pid", -1), option, event.name)


def _profile(head: str, filters: Dict[str, int]) -> PerfEvent:
    unit, _, amount = head.partition(":")
    if unit not in PROFILE_UNITS:
        raise PerfEventError(f"profile takes hz:N, s:N, ms:N or us:N, not '{head}'")
    scale = PROFILE_UNITS[unit]
    if scale is None:
        hz = _number(amount, "frequency", MAX_HZ)
        return PerfEvent(TYPE_SOFTWARE, SW_CPU_CLOCK, hz, 0, filters.get("cpu", -1),
                         filters.get("pid", -1))
    period = _number(amount, "interval", MAX_COUNT // scale) * scale
    if period < 1_000_000_000 // MAX_HZ:
        raise PerfEventError(f"profile interval {head} is shorter than 1/{MAX_HZ} s")
    return PerfEvent(TYPE_SOFTWARE, SW_CPU_CLOCK, 0, period, filters.get("cpu", -1),
                     filters.get("pid", -1))


def _split_filters(target: str) -> Tuple[str, Dict[str, int]]:
    head, sep, rest = target.partition(" ")
    filters: Dict[str, int] = {}
    text = sep + rest
    for m in _FILTER.finditer(text):
        if m.group(1) in filters:
            raise PerfEventError(f"{m.group(1)}= given twice")
        filters[m.group(1)] = int(m.group(2))
    if _FILTER.sub("", text):
        raise PerfEventError(f"after the event, only ' cpu=N' and ' pid=N' may follow, "
                             f"not '{text.strip()}'")
    return head, filters


def _number(text: str, what: str, most: int) -> int:
    if not text.isdigit() or not text.isascii() or text.startswith("0"):
        raise PerfEventError(f"the {what} must be a whole number from 1, not '{text}'")
    value = int(text) if len(text) <= 19 else most + 1  # spare int() a long text
    if value > most:
        raise PerfEventError(f"the {what} {text} is more than {most}")
    return value
