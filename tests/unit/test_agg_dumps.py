"""Aggregation dumps over a long run (issue 24): idle keys evicted with what they gained
after the read still shown, late dumps reported instead of falling behind, and the work
of one dump bounded."""

from __future__ import annotations

from runner.output.text import _channel_summary
from runner.runtime import aggdump
from runner.runtime.aggdump import Aggregations

from .test_aggregations_spec import COUNT, fake_types, slot_bytes, spec, syscall_key


class Kernel:
    """A map of syscall -> per-CPU slots; `race` adds counts between a read and a delete."""

    def __init__(self, counts, clock=None, read_takes=0.0):
        self.counts = dict(counts)
        self.race = {}
        self.deleted = []
        self.clock = clock
        self.read_takes = read_takes
        self.maps = self  # Kernel.maps: the reads

    def map_items(self, m, should_stop=None):
        if self.clock is not None:
            self.clock.now += self.read_takes
        return iter([(syscall_key(nr), [slot_bytes(n, 0, 0, 0)])
                     for nr, n in self.counts.items()])

    def delete_items(self, m, kbs):
        out = []
        for kb in kbs:
            nr = int.from_bytes(kb, "little", signed=True)
            self.deleted.append(nr)
            n = self.counts.pop(nr) + self.race.pop(nr, 0)
            out.append([slot_bytes(n, 0, 0, 0)])
        return out


class Sink:
    def __init__(self):
        self.dumps = []
        self.notes = []

    def aggregation(self, name, text, records):
        self.dumps.append({r["key"]["syscall_name"]: r["value"] for r in records})

    def note(self, text):
        self.notes.append(text)


def every_second(extra: str = ""):
    return spec(COUNT.replace("}}", f"}}, every: 1{extra}}}"),
                "      - aggregate: {map: calls, key: {syscall: syscall_nr}}")


def test_keys_idle_for_an_interval_are_evicted_and_what_came_after_the_read_is_shown():
    s = every_second(", clear: true")
    aggs, sink = Aggregations(s, fake_types(s)), Sink()
    k = Kernel({110: 5, 39: 2})  # getppid, getpid

    def dump():
        aggs.dump(k, sink, "calls")
        aggs.dumps["calls"].evict(k.delete_items)

    dump()  # nothing to compare with yet: nothing evicted
    k.counts[110] = 8
    k.race[39] = 2  # getpid called twice between the next read and its delete
    dump()
    assert k.deleted == [39]  # unchanged since the first dump
    dump()
    assert k.deleted == [39, 110]
    k.counts[39] = 1  # a key evicted comes back: all of it is new
    dump()
    assert sink.dumps == [{"getppid": 5, "getpid": 2}, {"getppid": 3}, {"getpid": 2},
                          {"getpid": 1}]
    assert aggs.evicted == {"calls": 2}
    channels = {"calls": {"dumps": 4, "lost": 0}}
    aggs.add_to_summary(channels)
    assert _channel_summary("calls", channels["calls"]) == \
        "calls: 4 dumps, 2 idle keys evicted"


def test_an_aggregation_without_clear_keeps_its_keys():
    s = every_second()
    aggs, sink = Aggregations(s, fake_types(s)), Sink()
    k = Kernel({110: 5})
    for _ in range(3):
        aggs.dump(k, sink, "calls")
        aggs.dumps["calls"].evict(k.delete_items)
    assert k.deleted == [] and aggs.evicted == {}
    assert sink.dumps == [{"getppid": 5}] * 3


class Clock:
    def __init__(self, now: float):
        self.now = now

    def monotonic(self) -> float:
        return self.now


def test_a_late_dump_is_reported_and_the_intervals_it_overran_are_skipped(monkeypatch):
    clock = Clock(100.0)
    monkeypatch.setattr(aggdump, "time", clock)
    s = every_second()
    aggs, sink = Aggregations(s, fake_types(s)), Sink()
    k = Kernel({110: 5}, clock, read_takes=2.5)  # each read of the map takes 2.5 s
    aggs.start(100.0)
    clock.now = 101.0
    aggs.tick(k, sink, lambda: False)
    assert clock.now == 103.5 and len(sink.dumps) == 1
    assert sink.notes == ["aggregation calls: dump 1 was late by 2.50 s (every 1 s): "
                          "2 intervals skipped"]
    aggs.tick(k, sink, lambda: False)  # at 103.5 the next is due at 104, not 102
    assert len(sink.dumps) == 1
    clock.now = 104.0
    aggs.tick(k, sink, lambda: False)
    assert len(sink.dumps) == 2 and aggs.skipped == {"calls": 4}
    channels = {"calls": {"dumps": 2, "lost": 0}}
    aggs.add_to_summary(channels)
    assert _channel_summary("calls", channels["calls"]) == \
        "calls: 2 dumps, 4 intervals skipped (late dumps)"


def test_a_dump_shows_at_most_max_rows_the_largest_and_says_how_many_it_left_out(
        monkeypatch):
    monkeypatch.setattr(aggdump, "MAX_ROWS", 2)
    s = every_second()
    aggs, sink = Aggregations(s, fake_types(s)), Sink()
    aggs.dump(Kernel({110: 5, 39: 2, 0: 9}), sink, "calls")
    assert sink.dumps == [{"getppid": 5, "read": 9}]
    assert sink.notes == ["aggregation calls: dump 1 shows the largest 2 keys; 1 more not "
                          "shown (give `top` to choose how many)"]


def test_a_further_signal_cuts_the_dumps_at_exit_short_and_leaves_the_rest_out():
    s = spec(COUNT + "\n" + COUNT.replace("calls", "other"),
             "      - aggregate: {map: calls, key: {syscall: syscall_nr}}\n"
             "      - aggregate: {map: other, key: {syscall: syscall_nr}}")
    aggs, sink = Aggregations(s, fake_types(s)), Sink()

    class Interrupted(Kernel):
        def map_items(self, m, should_stop=None):
            from runner.kernel.maps import DumpInterrupted
            raise DumpInterrupted(f"map {m.name}: stopped after 1024 entries")

    aggs.final(Interrupted({}), sink, lambda: False)
    assert aggs.cut == ["calls", "other"] and sink.dumps == []
    assert sink.notes == ["aggregation dump cut short by a signal (map calls: stopped "
                          "after 1024 entries)"]


def test_evicted_keys_are_counted_on_metrics():
    from prometheus_client import generate_latest

    from runner.runtime.metrics import Served, runner_status

    s = every_second(", clear: true")
    evicted = {"calls": 0}
    served = Served("127.0.0.1:0")  # not started
    served.add(s, fake_types(s), Kernel({}).map_items,
               lambda: runner_status({}, {}, {}, lambda: evicted))
    evicted["calls"] = 3
    text = generate_latest(served.server.registry).decode()
    assert 'ebpf_run_aggregation_keys_evicted_total{aggregation="calls",spec="t"} 3.0' in text


def test_the_fast_key_unpack_reads_what_the_field_by_field_decoder_reads():
    """AggReader unpacks a key in one struct.unpack; the generated ctypes decoder is the
    reference: signed and unsigned widths, padding, text with bytes that need escaping."""
    import ctypes

    from runner.kinds.decoders import Decoders

    s = spec("  h: {kind: hist, key: {a: u8, b: s16, c: u32, name: \"char[16]\", d: s64}}",
             "      - aggregate: {map: h, key: {a: 1, b: 2, c: 3, name: comm, d: 4}, "
             "value: arg0}")
    t = fake_types(s)
    cls = getattr(t, s.aggregations[0].map.key.base)
    reader = aggdump.AggReader(t, s.aggregations[0], Decoders.for_arch("x86_64"))
    assert reader.unpack is not None
    for a, b, c, name, d, bucket in [(255, -2, 4000000000, b"dd", -(1 << 63), 7),
                                     (0, 32767, 0, b"new\nline\x1b[0m\xff", 5, 0),
                                     (1, -32768, 1, b"x" * 16, (1 << 63) - 1, 64)]:
        raw = bytes(cls(a=a, b=b, c=c, name=name, d=d, bucket=bucket))
        raw = raw[:ctypes.sizeof(cls)]
        fast = reader._key(raw)
        reader.unpack, slow = None, reader._key(raw)
        reader.unpack = aggdump.decode.tuple_decoder(t, cls.__name__,
                                                     ["a", "b", "c", "name", "d", "bucket"])
        assert fast == slow and fast[1] == bucket


def test_the_fast_key_unpack_of_integers_only():
    from runner.kinds.decoders import Decoders

    s = spec("  h: {kind: hist, key: {a: u32, b: s8}}",
             "      - aggregate: {map: h, key: {a: 1, b: 2}, value: arg0}")
    t = fake_types(s)
    cls = getattr(t, s.aggregations[0].map.key.base)
    reader = aggdump.AggReader(t, s.aggregations[0], Decoders.for_arch("x86_64"))
    assert reader._key(bytes(cls(a=4000000000, b=-3, bucket=9))) == ((4000000000, -3), 9)


def test_a_text_key_part_that_is_not_utf8_has_its_bytes_in_json_on_both_paths():
    """Issue 24: invalid UTF-8 became U+FFFD in JSON with no way to get the bytes. Events
    had FIELD_hex; an aggregation's char[N] key part now has NAME_hex, whichever way the
    key is read (one struct.unpack, or the generated decoder field by field)."""
    from runner.kinds.decoders import Decoders

    s = spec("  h: {kind: count, key: {pid: u32, name: \"char[16]\"}}",
             "      - aggregate: {map: h, key: {pid: 1, name: comm}}")
    t = fake_types(s)
    cls = getattr(t, s.aggregations[0].map.key.base)
    reader = aggdump.AggReader(t, s.aggregations[0], Decoders.for_arch("x86_64"))
    assert reader.unpack is not None
    cases = [(b"/x\xff\xfe", {"pid": 7, "name": "/x\ufffd\ufffd", "name_hex": "2f78fffe"}),
             ("é\ufffd".encode(), {"pid": 7, "name": "é\ufffd"}),  # valid UTF-8: no bytes
             ("abcdefghijklmné".encode()[:15], {"pid": 7, "name": "abcdefghijklmn"})]  # cut
    for name, expected in cases:
        raw = bytes(cls(pid=7, name=name))
        fast, _ = reader._key(raw)
        unpack, reader.unpack = reader.unpack, None
        slow, _ = reader._key(raw)
        reader.unpack = unpack
        assert reader.json_key(fast) == reader.json_key(slow) == expected
        assert reader.label(fast) == (str(7), expected["name"])  # text output: unchanged


class KeylessKernel:
    """A keyless count's map: no entry until the first event, then its one slot."""

    def __init__(self):
        self.count = None
        self.maps = self

    def map_items(self, m, should_stop=None):
        return iter([] if self.count is None else [(bytes(4), [slot_bytes(self.count, 0, 0, 0)])])

    def delete_items(self, m, kbs):  # an eviction (idle for an interval)
        assert len(kbs) == 1
        count, self.count = self.count, None
        return [[slot_bytes(count, 0, 0, 0)]]


class TextSink:
    def __init__(self):
        self.texts, self.records, self.notes = [], [], []

    def aggregation(self, name, text, records):
        self.texts.append(text)
        self.records.extend(records)

    def note(self, text):
        self.notes.append(text)


def test_a_keyless_count_shows_0_for_an_interval_without_events_and_each_periodic_dump_its_interval(
        monkeypatch):
    from datetime import datetime, timedelta, timezone

    clock = Clock(100.0)
    monkeypatch.setattr(aggdump, "time", clock)
    wall = datetime(2026, 12, 7, 22, 35, 1, 250000, tzinfo=timezone(timedelta(hours=1)))
    monkeypatch.setattr(aggdump, "wall_clock", lambda: wall)
    s = spec("  n: {kind: count, every: 1, clear: true}", "      - aggregate: {map: n}")
    aggs, sink, k = Aggregations(s, fake_types(s)), TextSink(), KeylessKernel()
    aggs.start(100.0)
    clock.now = 101.0
    aggs.tick(k, sink, lambda: False)  # interval 1: no event yet, no map entry
    k.count = 3
    clock.now = 102.0
    aggs.tick(k, sink, lambda: False)  # interval 2: 3 events
    clock.now = 105.5  # the dump due at 103 comes late (a stopped process) ...
    aggs.tick(k, sink, lambda: False)  # ... as interval 3: nothing new
    aggs.final(k, sink)  # 4 and 5 were skipped: the partial interval 6
    assert sink.texts == [
        "22:35:01 interval 1\n@n:\nCOUNT\n    0",
        "22:35:01 interval 2\n@n:\nCOUNT\n    3",
        "22:35:01 interval 3\n@n:\nCOUNT\n    0",
        "22:35:01 interval 6\n@n:\nCOUNT\n    0",
    ]
    assert [(r["interval"], r["value"]) for r in sink.records] == [(1, 0), (2, 3), (3, 0), (6, 0)]
    assert sink.records[0] == {"type": "map", "map": "n", "key": {}, "unit": None,
                               "kind": "count", "value": 0,
                               "time": "2026-12-07T22:35:01.250+01:00", "interval": 1}
    assert sink.notes == ["aggregation n: dump 3 was late by 2.50 s (every 1 s): "
                          "2 intervals skipped"]


def test_a_dump_of_an_aggregation_without_every_has_no_stamp_and_a_keyless_sum_shows_0():
    s = spec("  total: {kind: sum}\n  lat: {kind: hist}",
             "      - aggregate: {map: total, value: arg2}\n"
             "      - aggregate: {map: lat, value: arg2}")
    aggs, sink = Aggregations(s, fake_types(s)), TextSink()
    aggs.start(0.0)
    aggs.final(KeylessKernel(), sink)
    assert sink.texts == ["@total:\nSUM\n  0", ""]  # an empty histogram draws nothing
    assert sink.records == [{"type": "map", "map": "total", "key": {}, "unit": None,
                             "kind": "sum", "value": 0}]
