"""The aggregations section and the aggregate action: the model, located errors, and
what the runtime makes of kernel rows (dumps, JSON records, metrics)."""

from __future__ import annotations

import ctypes
import sys
import types

import pytest

from runner.errors import SpecError
from runner.model.aggregates import AggSlotC, Histogram, Log2Layout
from runner.output.prometheus import cumulative_buckets
from runner.runtime.aggdump import AggReader, Aggregations
from runner.runtime.metrics import SpecMetrics, metric_specs

from .util import spec_from_text

BASE = """\
name: t
maps:
  started: {type: hash, key: u32, value: u64}
aggregations:
AGGS
probes:
  p:
    attach: {raw_tracepoint: sys_enter}
    do:
DO
"""


def spec(aggs: str, do: str):
    return spec_from_text(BASE.replace("AGGS", aggs).replace("DO", do))


def first_error(aggs: str, do: str) -> str:
    with pytest.raises(SpecError) as info:
        spec(aggs, do)
    d = info.value.diagnostics[0]
    return f"{d.location.line}:{d.location.col}: {d.message}"


COUNT = "  calls: {kind: count, key: {syscall: s64}, decode: {syscall: syscall}}"
HIST = "  lat: {kind: hist, unit: us, metric: {name: read_latency_seconds, help: h}}"


def test_an_aggregation_is_a_per_cpu_map_with_a_key_struct():
    s = spec(COUNT, "      - aggregate: {map: calls, key: {syscall: syscall_nr}}")
    (agg,) = s.aggregations
    assert (agg.kind, agg.map.kind, str(agg.map.key), str(agg.map.value)) == \
        ("count", "percpu_hash", "er_agg_calls", "er_agg_slot")
    assert [(k.name, str(k.type), k.decode) for k in agg.keys] == [("syscall", "s64", "syscall")]
    slot = next(st for st in s.structs if st.name == "er_agg_slot")
    assert [(m.name, m.offset) for m in slot.members] == \
        [("count", 0), ("sum", 8), ("min", 16), ("max", 24)]
    assert slot.layout.size == ctypes.sizeof(AggSlotC)


def test_a_histogram_key_ends_with_its_bucket():
    s = spec("  h: {kind: hist, key: {cpu: u32}}",
             "      - aggregate: {map: h, key: {cpu: cpu}, value: arg2}")
    key = next(st for st in s.structs if st.name == "er_agg_h")
    assert [(m.name, m.offset) for m in key.layout.fields] == [("cpu", 0), ("bucket", 8)]
    assert str(s.aggregations[0].map.value) == "u64"


def test_elapsed_converts_ns_to_the_unit():
    s = spec(HIST, "      - aggregate: {map: lat, elapsed: {map: started, key: tid}}")
    action = s.probes[0].candidates[0].function.actions[0]
    assert (action.divide, action.elapsed.map.name) == (1000, "started")


def test_elapsed_takes_a_struct_key():
    # Issue 24: refused before, by the schema, as "unknown action 'tid'".
    text = BASE.replace("AGGS", HIST).replace(
        "DO", "      - aggregate: {map: lat, elapsed: {map: pending, key: {tid: tid, fd: arg0}}}")
    text = text.replace("maps:", "structs:\n  k: [{tid: u32}, {fd: u64}]\nmaps:\n"
                        "  pending: {type: hash, key: k, value: u64}", 1)
    action = spec_from_text(text).probes[0].candidates[0].function.actions[0]
    assert [a.member for a in action.elapsed.key.assigns] == ["tid", "fd"]


@pytest.mark.parametrize("aggs,do,expected", [
    (COUNT, "      - aggregate: {map: call, key: {syscall: syscall_nr}}",
     "10:26: unknown aggregation 'call'"),
    (COUNT, "      - aggregate: {map: calls}",
     "10:20: aggregation 'calls' is keyed by syscall: give syscall"),
    (COUNT, "      - aggregate: {map: calls, key: {syscall: syscall_nr, cpu: cpu}}",
     "10:60: 'cpu' is not a key field of 'calls' (keyed by syscall)"),
    (COUNT, "      - aggregate: {map: calls, key: {syscall: syscall_nr}, value: 1}",
     "10:61: a count records occurrences: it takes no value"),
    ("  s: {kind: sum}", "      - aggregate: {map: s}",
     "10:20: a sum needs exactly one of 'value' or 'elapsed'"),
    ("  s: {kind: sum, unit: bytes}",
     "      - aggregate: {map: s, elapsed: {map: started, key: tid}}",
     "10:38: elapsed is a time; aggregation 's' is in bytes"),
    (HIST, "      - aggregate: {map: lat, elapsed: {map: started, key: {tid: tid}}}",
     "10:60: map 'started' has a u32 key, not a struct"),
    (HIST, "      - aggregate: {map: lat, elapsed: {map: lat, key: tid}}",
     "10:46: 'lat' is an aggregation, not a hash map of u64 timestamps"),
    ("  c: {kind: count, key: {n: s64}, decode: {n: errnos}}",
     "      - aggregate: {map: c, key: {n: 1}}",
     "5:47: unknown decoder 'errnos'; known: cgroup, container, errno, inet, ip, ipv4, ipv6, "
     "ksym, open_flags, port_be, signal, syscall, syscall_ret, tcp_state, uid, and 'enum NAME' "
     "(a kernel enum)"),
    ("  c: {kind: count, decode: {n: errno}}", "      - aggregate: {map: c}",
     "5:29: 'n' is not a key field"),
    # Decoders are checked against the key field: these failed at the first dump.
    ("  c: {kind: count, key: {f: u16}, decode: {f: ip}}",
     "      - aggregate: {map: c, key: {f: 1}}",
     "5:47: key field 'f' is u16: decoder 'ip' takes u8[4] or u8[16]"),
    ("  c: {kind: count, key: {comm: 'char[16]'}, decode: {comm: syscall}}",
     "      - aggregate: {map: c, key: {comm: comm}}",
     "5:60: key field 'comm' is char[16]: decoder 'syscall' takes a number"),
    ("  l: {kind: lhist, lhist: {min: 0, max: 10, step: 3}}",
     "      - aggregate: {map: l, value: 1}",
     "5:27: needs min < max, step > 0 and max - min a multiple of step; got min=0 max=10 step=3"),
    # bpftrace's limit: a million buckets took 2 GB and 21 s to stop, 2^62 a MemoryError.
    ("  l: {kind: lhist, lhist: {min: 0, max: 10000000, step: 1}}",
     "      - aggregate: {map: l, value: 1}",
     "5:27: too many buckets, must be <= 1000 (would need 10000000): widen step or narrow "
     "min..max"),
    ("  l: {kind: lhist, lhist: {min: 0, max: 4611686018427387904, step: 1}}",
     "      - aggregate: {map: l, value: 1}",
     "5:27: too many buckets, must be <= 1000 (would need 4611686018427387904): widen step "
     "or narrow min..max"),
    ("  l: {kind: lhist, lhist: {min: 0, max: 1001, step: 1}}",
     "      - aggregate: {map: l, value: 1}",
     "5:27: too many buckets, must be <= 1000 (would need 1001): widen step or narrow "
     "min..max"),
    ("  l: {kind: lhist, lhist: {min: 0, max: 9223372036854775808, step: 1}}",
     "      - aggregate: {map: l, value: 1}",
     "5:41: max must fit an s64 (the values compared with it are s64): "
     "-9223372036854775808 to 9223372036854775807; got 9223372036854775808"),
    ("  l: {kind: lhist, lhist: {min: -9223372036854775809, max: 0, step: 1}}",
     "      - aggregate: {map: l, value: 1}",
     "5:33: min must fit an s64 (the values compared with it are s64): "
     "-9223372036854775808 to 9223372036854775807; got -9223372036854775809"),
    ("  m: {kind: min, clear: true}", "      - aggregate: {map: m, value: 1}",
     "5:18: a min over an interval cannot be worked out from running totals"),
    ("  c: {kind: count, metric: {name: calls}}", "      - aggregate: {map: c}",
     "5:35: counter 'calls' must end in '_total'"),
    ("  h: {kind: hist, unit: us, metric: {name: lat_us}}",
     "      - aggregate: {map: h, value: 1}",
     "5:44: metric name 'lat_us': 'us' is not a base unit; record seconds or bytes (a "
     "histogram's scale converts) and name the metric after them"),
    ("  c: {kind: hist}", "      - count: {map: c, key: 1}",
     "10:22: unknown map 'c'"),
    ("  c: {kind: count, at_exit: false}", "      - aggregate: {map: c}",
     "5:3: aggregation 'c' is never shown: give 'every' or 'metric', or leave 'at_exit' on"),
    ("  started: {kind: count}", "      - aggregate: {map: started}",
     "5:3: 'started' is already a map's name"),
])
def test_errors_are_located(aggs, do, expected):
    assert first_error(aggs, do) == expected


def test_the_schema_refuses_an_unknown_kind():
    with pytest.raises(SpecError) as info:
        spec("  c: {kind: histogram}", "      - aggregate: {map: c}")
    assert str(info.value).splitlines()[0] == (
        "test.yaml:5:13: error: 'histogram' is not one of 'count', 'sum', 'min', 'max', "
        "'avg', 'stats', 'hist', 'lhist' (in aggregations.c.kind)")


# ---- reading what the kernel holds -------------------------------------------------


def fake_types(s) -> types.ModuleType:
    """The generated ctypes module of spec s, loaded from its rendered text as a run does."""
    from runner.codegen import render
    from runner.runtime.decode import load_types

    return load_types(render.render_python(s), s)


def slot_bytes(count: int, total: int, lo: int, hi: int) -> bytes:
    return bytes(AggSlotC(count, total, lo, hi))


def syscall_key(nr: int) -> bytes:
    return nr.to_bytes(8, sys.byteorder, signed=True)


class FakeKernel:
    def __init__(self, items):
        self.items = items
        self.maps = self  # Kernel.maps: the reads

    def map_items(self, m, should_stop=None):
        return iter(self.items[m.name])


class Sink:
    def __init__(self):
        self.dumps = []

    def aggregation(self, name, text, records):
        self.dumps.append((name, text, records))


def test_dumps_combine_cpus_decode_keys_clear_and_keep_the_top():
    s = spec(COUNT.replace("}}", "}, clear: true, top: 2}"),
             "      - aggregate: {map: calls, key: {syscall: syscall_nr}}")
    k = FakeKernel({"calls": [
        (syscall_key(110), [slot_bytes(3, 0, 0, 0), slot_bytes(4, 0, 0, 0)]),
        (syscall_key(0), [slot_bytes(1, 0, 0, 0), slot_bytes(0, 0, 0, 0)]),
        (syscall_key(39), [slot_bytes(2, 0, 0, 0), slot_bytes(0, 0, 0, 0)]),
    ]})
    aggs, sink = Aggregations(s, fake_types(s)), Sink()
    aggs.dump(k, sink, "calls")
    k.items["calls"][0] = (syscall_key(110), [slot_bytes(10, 0, 0, 0), slot_bytes(4, 0, 0, 0)])
    aggs.dump(k, sink, "calls")
    (_, text1, records1), (_, text2, records2) = sink.dumps
    assert text1 == "@calls:\nSYSCALL  COUNT\ngetpid       2\ngetppid      7"
    assert records1[1] == {"type": "map", "map": "calls", "unit": None, "kind": "count",
                           "key": {"syscall": 110, "syscall_name": "getppid"}, "value": 7}
    assert text2 == "@calls:\nSYSCALL  COUNT\ngetppid      7"  # 7 more since the last dump
    assert [r["value"] for r in records2] == [7]


def test_histogram_rows_become_one_record_and_a_metric_in_seconds():
    zero8 = bytes(8)
    s = spec(HIST, "      - aggregate: {map: lat, elapsed: {map: started, key: tid}}")
    one = (1).to_bytes(8, sys.byteorder)
    total = (150 + 200).to_bytes(8, sys.byteorder)
    k = FakeKernel({"lat": [((9).to_bytes(8, sys.byteorder), [one, one]),  # [128, 256) us
                            (((1 << 64) - 1).to_bytes(8, sys.byteorder), [total, zero8])]})
    sink = Sink()
    Aggregations(s, fake_types(s)).dump(k, sink, "lat")
    assert sink.dumps[0][2] == [{"type": "hist", "map": "lat", "key": {}, "unit": "us",
                                 "count": 2, "sum": 350,
                                 "buckets": [{"lower": 128, "upper": 256, "count": 2}]}]
    ((metric, name),) = metric_specs(s)
    assert (metric.name, metric.kind, metric.scale, name) == \
        ("read_latency_seconds", "histogram", 1e-6, "lat")
    (snap,) = SpecMetrics(s, fake_types(s), k.map_items).read()
    hist = snap.samples[0].histogram
    assert isinstance(hist, Histogram) and hist.layout == Log2Layout()
    buckets = dict(cumulative_buckets(metric, hist))
    assert (buckets["0.000127"], buckets["0.000255"], buckets["+Inf"]) == (0.0, 2.0, 2.0)
    # le bounds stop at 100 s: 2**27 us is the last bucket's upper bound under it
    assert list(buckets)[-2:] == ["67.108863", "+Inf"]
    assert hist.sum == 350


def test_metric_labels_are_the_decoded_key():
    s = spec(COUNT.replace("}}", "}, metric: {help: h}}"),
             "      - aggregate: {map: calls, key: {syscall: syscall_nr}}")
    k = FakeKernel({"calls": [(syscall_key(110), [slot_bytes(5, 0, 0, 0)])]})
    ((metric, _),) = metric_specs(s)
    assert (metric.name, metric.kind, metric.labels) == ("calls_total", "counter", ("syscall",))
    (snap,) = SpecMetrics(s, fake_types(s), k.map_items).read()
    assert [(x.labels, x.value) for x in snap.samples] == [(("getppid",), 5)]


def test_reader_of_a_keyless_stats():
    s = spec("  st: {kind: stats, unit: bytes}", "      - aggregate: {map: st, value: arg2}")
    reader = AggReader(fake_types(s), s.aggregations[0], __import__(
        "runner.kinds.decoders", fromlist=["Decoders"]).Decoders.for_arch("x86_64"))
    zero = (0).to_bytes(4, sys.byteorder)
    got = reader.read([(zero, [slot_bytes(2, 10, 3, 7), slot_bytes(1, -1, -1, -1),
                               slot_bytes(0, 0, 0, 0)])])
    stats = got[()]
    assert (stats.count, stats.sum, stats.min, stats.max, stats.avg) == (3, 9, -1, 7, 3)


def test_a_bad_metrics_address_is_a_usage_error_before_anything_runs(capsys):
    from runner.cli import main as cli

    assert cli.main(["run", "specs/tools/syscount.yaml", "--metrics", "9435"]) == 2
    assert capsys.readouterr().err == (
        "ebpf-run: error: --metrics '9435': expected HOST:PORT, e.g. 127.0.0.1:9435\n")


def test_each_metric_keeps_its_own_label_set_limit_and_counts_its_own_drops():
    from runner.runtime.metrics import Served

    two = ("  calls: {kind: count, key: {syscall: s64}, decode: {syscall: syscall},\n"
           "          metric: {help: h, max_label_sets: 1}}\n"
           "  more: {kind: count, key: {syscall: s64}, decode: {syscall: syscall},\n"
           "         metric: {help: h, max_label_sets: 3}}")
    s = spec(two, "      - aggregate: {map: calls, key: {syscall: syscall_nr}}\n"
                  "      - aggregate: {map: more, key: {syscall: syscall_nr}}")
    rows = [(syscall_key(nr), [slot_bytes(1, 0, 0, 0)]) for nr in (0, 1, 39, 110, 60)]
    k = FakeKernel({"calls": rows, "more": rows})
    served = Served("127.0.0.1:0")  # not started
    collector = served.add(s, fake_types(s), k.map_items, lambda: None)  # type: ignore
    families = {f.name: f for f in collector.collect()}
    assert [len(families[n].samples) for n in ("calls", "more")] == [1, 3]
    assert collector.dropped == {"calls_total": 4, "more_total": 2}
    families = {f.name: f for f in collector.collect()}  # the same sets stay
    assert [x.labels["syscall"] for x in families["more"].samples] == ["read", "write", "getpid"]
    assert collector.dropped == {"calls_total": 8, "more_total": 4}


def test_the_label_set_limit_drops_and_counts_the_rest():
    from runner.output.prometheus import SpecCollector

    s = spec(COUNT.replace("}}", "}, metric: {help: h, max_label_sets: 1}}"),
             "      - aggregate: {map: calls, key: {syscall: syscall_nr}}")
    k = FakeKernel({"calls": [(syscall_key(110), [slot_bytes(5, 0, 0, 0)]),
                              (syscall_key(39), [slot_bytes(2, 0, 0, 0)])]})
    metrics = SpecMetrics(s, fake_types(s), k.map_items)
    collector = SpecCollector("t", [m for m, _ in metrics.exported], metrics.read)
    (family,) = collector.collect()
    assert [(x.labels, x.value) for x in family.samples] == [({"syscall": "getppid"}, 5.0)]
    assert collector.dropped == {"calls_total": 1}


def test_metric_labels_are_the_exact_value_and_text_keeps_its_escapes():
    # The exposition format escapes \n itself: a label holds the value, not the text
    # output's escaped form (9 characters for "new\nline").
    s = spec("  c: {kind: count, key: {comm: 'char[16]'}, metric: {help: h}}",
             "      - aggregate: {map: c, key: {comm: comm}}")
    name = b"new\nline\\x".ljust(16, b"\0")
    k = FakeKernel({"c": [(name, [slot_bytes(3, 0, 0, 0)])]})
    (snap,) = SpecMetrics(s, fake_types(s), k.map_items).read()
    assert [x.labels for x in snap.samples] == [("new\nline\\x",)]
    aggs, sink = Aggregations(s, fake_types(s)), Sink()
    aggs.dump(k, sink, "c")
    ((_, text, records),) = sink.dumps
    assert text.splitlines()[1:] == ["COMM          COUNT", "new\\nline\\\\x      3"]
    assert records[0]["key"] == {"comm": "new\nline\\x"}


@pytest.mark.parametrize("lo,hi,step", [(0, 1000, 1), (-1000, 0, 1), (0, 1, 1),
                                        (-(2**63), 2**63 - 1, (2**64 - 1) // 255)])
def test_every_accepted_lhist_range_is_accepted_up_to_the_limit(lo, hi, step):
    # The C each one renders is compiled by tests/kernel/test_compile.py.
    s = spec(f"  l: {{kind: lhist, lhist: {{min: {lo}, max: {hi}, step: {step}}}}}",
             "      - aggregate: {map: l, value: 1}")
    assert s.aggregations[0].linear == (lo, hi, step)


@pytest.mark.parametrize("lo,hi,step", [(-(2**63), 2**63 - 1, (2**64 - 1) // 255),
                                        (-(2**63), 0, 2**63 // 8),
                                        (-(2**63), 2**63 - 1, 2**64 - 1)])
def test_lhist_c_has_only_literals_of_their_own_type_at_the_s64_ends(lo, hi, step):
    # -9223372036854775808LL is the negation of a literal no long long holds: clang makes
    # it a wider type (or warns), the comparison is then not the s64 one meant.
    import re

    from runner.codegen.render import render_c

    s = spec(f"  l: {{kind: lhist, lhist: {{min: {lo}, max: {hi}, step: {step}}}}}",
             "      - aggregate: {map: l, value: 1}")
    c = render_c(s)
    start = c.index("linear buckets")
    block = c[c.rindex("\n", 0, start):c.index("lookup(&er_key)", start)]
    for digits, suffix in re.findall(r"\b(\d+)(ULL|LL)\b", block):
        assert int(digits) < (2**64 if suffix == "ULL" else 2**63), (digits, suffix, block)
    assert "(u64)er_v - (u64)" in block  # v - min cannot overflow


class CountingKernel:
    """`n` keys, made as they are read; counts what a scrape pulls out of the map."""

    def __init__(self, n: int):
        self.n, self.pulled, self.looked_up, self.counted = n, 0, 0, 0

    def map_items(self, m, should_stop=None):
        for i in range(self.n):
            self.pulled += 1
            yield syscall_key(i), [slot_bytes(1, 0, 0, 0)]

    def lookup(self, m, keys):
        self.looked_up += len(keys)
        return {kb: [slot_bytes(2, 0, 0, 0)] for kb in keys
                if int.from_bytes(kb, sys.byteorder, signed=True) < self.n}

    def count(self, m):
        self.counted += 1
        return self.n


def counted_metrics(keys: int, limit: int):
    """A count aggregation of `keys` keys exported with max_label_sets `limit`, read
    through a CountingKernel at a time the test sets."""
    s = spec(f"  c: {{kind: count, key: {{n: s64}}, metric: {{help: h, max_label_sets: {limit}}}}}",
             "      - aggregate: {map: c, key: {n: 1}}")
    k = CountingKernel(keys)
    now = [0.0]
    return k, now, SpecMetrics(s, fake_types(s), k.map_items, k.lookup, k.count,
                               lambda: now[0])


def test_a_scrape_reads_at_most_max_label_sets_keys_of_a_big_map():
    # It read and decoded every key before applying the limit: 1,000,000 keys took 18-25 s
    # and 840 MB a scrape. Now it stops at the limit, and later scrapes look up the keys
    # they export and count the others.
    from runner.output.prometheus import SpecCollector

    k, now, metrics = counted_metrics(100_000, 100)
    collector = SpecCollector("t", [m for m, _ in metrics.exported], metrics.read)
    (family,) = collector.collect()
    assert [x.labels["n"] for x in family.samples] == [str(i) for i in range(100)]
    assert (k.pulled, k.looked_up, k.counted) == (101, 0, 1)
    assert collector.dropped == {"c_total": 100_000 - 100}
    now[0] += 5
    (family,) = collector.collect()  # full: no walk, a lookup of its own keys
    assert [x.value for x in family.samples] == [2.0] * 100
    assert (k.pulled, k.looked_up, k.counted) == (101, 100, 1)  # counted 5 s ago: kept
    assert collector.dropped == {"c_total": 2 * (100_000 - 100)}
    now[0] += 0.5
    list(collector.collect())  # within a second of the last read: that read, again
    assert (k.pulled, k.looked_up, k.counted) == (101, 100, 1)
    assert collector.dropped == {"c_total": 3 * (100_000 - 100)}
    now[0] += 30
    k.n += 50  # more keys since: counted again
    list(collector.collect())
    assert (k.pulled, k.looked_up, k.counted) == (101, 200, 2)
    assert collector.dropped == {"c_total": 3 * (100_000 - 100) + 100_050 - 100}


def test_a_key_gone_from_the_map_frees_its_place():
    k, now, metrics = counted_metrics(5, 2)
    assert [x.labels for x in metrics.read()[0].samples] == [("0",), ("1",)]
    k.n = 0  # every key evicted
    now[0] += 5
    assert metrics.read()[0].samples == ()
    k.n = 5
    now[0] += 5
    assert [x.labels for x in metrics.read()[0].samples] == [("0",), ("1",)]


def test_a_full_metric_walks_a_map_no_bigger_than_its_keys_and_looks_up_a_grown_one():
    # A map of exactly max_label_sets keys was looked up a key at a time at every scrape
    # once full: 10,000 system calls, 30-36 ms of a 10,000-key scrape here (a batched walk
    # of it: 12 ms; bench/agent_bench.py).
    k, now, metrics = counted_metrics(100, 100)
    (first,) = metrics.read()
    assert (k.pulled, k.looked_up, k.counted, first.unread) == (100, 0, 0, 0)
    now[0] += 5
    (second,) = metrics.read()  # full, and the map holds no more than its keys: walked
    assert (k.pulled, k.looked_up, k.counted) == (200, 0, 1)
    assert second.samples == first.samples and second.unread == 0
    k.n = 10_000  # grown since the count (kept 30 s): the walk stops past 100 entries
    now[0] += 5
    (third,) = metrics.read()
    assert (k.pulled, k.looked_up, k.counted) == (301, 100, 1)
    assert [x.labels for x in third.samples] == [x.labels for x in first.samples]
    assert [x.value for x in third.samples] == [2.0] * 100  # the lookups' values


def test_histogram_rows_of_keys_beyond_the_limit_are_not_decoded():
    s = spec("  h: {kind: hist, unit: bytes, key: {cpu: u32},\n"
             "      metric: {name: size_bytes, help: h, max_label_sets: 1}}",
             "      - aggregate: {map: h, key: {cpu: cpu}, value: arg2}")
    one = (1).to_bytes(8, sys.byteorder)

    def key(cpu: int, bucket: int) -> bytes:
        return cpu.to_bytes(4, sys.byteorder) + bytes(4) + bucket.to_bytes(8, sys.byteorder)

    rows = [(key(cpu, b), [one]) for cpu in (7, 8, 9) for b in (3, 4)]
    k = FakeKernel({"h": rows})
    metrics = SpecMetrics(s, fake_types(s), k.map_items)
    decoded = []
    reader = metrics.readers["h"]
    original = reader._key
    reader._key = lambda raw: decoded.append(raw) or original(raw)
    (snap,) = metrics.read()
    assert [(x.labels, x.histogram.total) for x in snap.samples] == [(("7",), 2)]
    assert snap.unread == 4 and len(decoded) == 2  # the others' entries: a bucket each


class HistogramKernel:
    """A histogram's map of `n` keys (cpu numbers) with entries in buckets 3 and 9 and a
    sum; counts what a scrape pulls out of it, looks up and counts."""

    def __init__(self, n: int):
        self.n, self.pulled, self.looked_up, self.counted = n, 0, 0, 0

    def rows(self):
        def u64(n: int) -> bytes:
            return n.to_bytes(8, sys.byteorder)

        for cpu in range(self.n):
            ident = cpu.to_bytes(4, sys.byteorder) + bytes(4)
            for bucket, value in ((3, u64(1)), (9, u64(1)), ((1 << 64) - 1, u64(cpu))):
                yield ident + u64(bucket), [value]

    def map_items(self, m, should_stop=None):
        for row in self.rows():
            self.pulled += 1
            yield row

    def lookup(self, m, keys):
        self.looked_up += len(keys)
        rows = dict(self.rows())
        return {kb: rows[kb] for kb in keys if kb in rows}

    def count(self, m):
        self.counted += 1
        return 3 * self.n


def test_a_histogram_scrape_looks_up_its_admitted_keys_instead_of_walking_the_map():
    # It walked every (key, bucket) entry on every scrape: a map of 1,000,000 keys, 3-6 s
    # a scrape. Once full it looks up its keys' buckets, and exports what a walk does.
    s = spec("  h: {kind: hist, unit: bytes, key: {cpu: u32},\n"
             "      metric: {name: size_bytes, help: h, max_label_sets: 10}}",
             "      - aggregate: {map: h, key: {cpu: cpu}, value: arg2}")
    k, now = HistogramKernel(10_000), [0.0]
    metrics = SpecMetrics(s, fake_types(s), k.map_items, k.lookup, k.count, lambda: now[0])
    (first,) = metrics.read()
    assert [(x.labels, x.histogram.counts[3], x.histogram.counts[9], x.histogram.sum)
            for x in first.samples] == [((str(c),), 1, 1, c) for c in range(10)]
    assert first.unread == 3 * (10_000 - 10)  # the others' entries
    assert (k.pulled, k.looked_up, k.counted) == (31, 10 * 63, 1)  # 66 less the 3 walked
    now[0] += 5
    (second,) = metrics.read()  # full: no walk, its 10 keys' 66 entries looked up each
    assert (k.pulled, k.looked_up, k.counted) == (31, 10 * 63 + 10 * 66, 1)
    assert second == first
    small, now = HistogramKernel(3), [0.0]
    metrics = SpecMetrics(s, fake_types(s), small.map_items, small.lookup, small.count,
                          lambda: now[0])
    (snap,) = metrics.read()  # fewer keys than the limit: one walk, no lookup
    assert (len(snap.samples), snap.unread, small.pulled, small.looked_up) == (3, 0, 9, 0)


def test_a_histogram_scrape_walks_a_small_map_and_gives_up_on_one_grown_since_counted():
    s = spec("  h: {kind: hist, unit: bytes, key: {cpu: u32},\n"
             "      metric: {name: size_bytes, help: h, max_label_sets: 2}}",
             "      - aggregate: {map: h, key: {cpu: cpu}, value: arg2}")
    k, now = HistogramKernel(5), [0.0]
    metrics = SpecMetrics(s, fake_types(s), k.map_items, k.lookup, k.count, lambda: now[0])
    (first,) = metrics.read()  # 15 entries: a walk costs less than 2 x 63 lookups
    assert (k.pulled, k.looked_up, k.counted, first.unread) == (7 + 15, 0, 1, 9)
    k.n = 10_000  # grown since the count (kept 30 s): the walk stops at 2 x 66 entries
    now[0] += 5
    (second,) = metrics.read()
    assert (k.pulled, k.looked_up) == (7 + 15 + 133, 2 * 66)
    assert second.samples == first.samples


def test_a_histogram_metric_keeps_fewer_label_sets_by_default():
    """Each label set of a hist is 66 series: 10,000 of them (a counter's default) made
    scrapes past Prometheus' 10 s timeout."""
    s = spec(HIST + "\n  c: {kind: count, metric: {name: calls_total}}\n"
             "  h: {kind: hist, metric: {name: sizes_bytes, max_label_sets: 7}}",
             "      - aggregate: {map: lat, elapsed: {map: started, key: tid}}\n"
             "      - aggregate: {map: c}\n      - aggregate: {map: h, value: arg0}")
    assert {a.name: a.metric.max_label_sets for a in s.aggregations} == \
        {"lat": 1_000, "c": 10_000, "h": 7}
