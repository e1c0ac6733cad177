"""Perf event arrays: one buffer per CPU, read through BCC's perf reader, which calls
back once per record (the record path runs the stop check on each, so a stop asked for
in the middle of a long read detaches the probes there and then)."""

from __future__ import annotations

from typing import Any, Callable

from runner.model.spec import Map

DataCallback = Callable[[int, int], None]  # (address, size) of one record
LostCallback = Callable[[int], None]


def open_perf(bpf: Any, m: Map, on_data: DataCallback, on_lost: LostCallback,
              wakeup_events: int = 1) -> None:
    def data(_cpu: int, addr: int, size: int) -> None:
        on_data(addr, size)

    bpf[m.name.encode()].open_perf_buffer(
        data, page_cnt=m.pages, lost_cb=on_lost, wakeup_events=wakeup_events)
