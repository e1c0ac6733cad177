"""The one record path: counting, --count, what is still read, errors kept for the loop, and the
stop check run on every record."""

from __future__ import annotations

import io
from typing import List

from runner.output.text import Sink
from runner.runtime.records import Records
from runner.runtime.signals import Stop


class Lines(Sink):
    def __init__(self) -> None:
        super().__init__(io.StringIO(), io.StringIO())
        self.got: List[str] = []

    def message(self, text, fields) -> None:
        self.got.append(text)


def records(limit=None, check=lambda: None):
    stop = Stop()
    sink = Lines()
    r = Records(sink, stop, limit, check)
    r.open("messages")  # as Runner.open_channels does for trace_pipe
    return r, sink, stop


def test_records_are_written_and_counted_per_channel():
    r, sink, stop = records()
    r.trace_lines(["a", "b"])
    r.trace_lines(["c"])
    assert sink.got == ["a", "b", "c"]
    assert r.received == {"messages": 3} and r.total == 3 and stop.reason is None


def test_count_takes_exactly_what_is_left_then_stops():
    r, sink, stop = records(limit=3)
    r.trace_lines(["a", "b"])
    r.trace_lines(["c", "d", "e"])
    r.trace_lines(["f"])
    assert sink.got == ["a", "b", "c"] and r.received == {"messages": 3}
    assert stop.reason == "count"
    # Not printed, but counted: received + these is what arrived.
    assert r.after_count == {"messages": 3}


def test_after_an_error_nothing_more_is_counted_after_count():
    r, sink, stop = records(limit=1)
    r.trace_lines(["a"])
    stop.fail(RuntimeError("x"))
    r.trace_lines(["b"])
    assert sink.got == ["a"] and r.after_count == {}


def test_an_error_is_stored_and_later_records_are_discarded():
    r, sink, stop = records()

    def boom(_data, _n):
        raise ValueError("bad record")

    r.open("events")
    r.take("events", 4, boom, None)
    r.trace_lines(["after"])
    assert isinstance(stop.error, ValueError) and stop.reason == "error"
    assert r.received == {"events": 0, "messages": 0} and sink.got == []


def test_a_signal_or_duration_keeps_reading_and_the_stop_check_runs_per_take():
    calls = []
    r, sink, stop = records(check=lambda: calls.append(1))
    stop.request("SIGINT")
    r.trace_lines(["still read"])  # what the kernel sent before the stop is printed
    r.trace_lines(["and this"])
    assert sink.got == ["still read", "and this"] and len(calls) == 2


def test_the_first_stop_reason_wins_but_an_error_overrides():
    stop = Stop()
    stop.request("count")
    stop.request("SIGINT")
    assert stop.reason == "count" and stop.reading  # read on, to be counted
    stop.fail(RuntimeError("x"))
    assert stop.reason == "error" and not stop.reading
