"""`ebpf-run serve` without a kernel: which files it serves, the one registry as specs come,
fail and go (spec label, ebpf_run_spec_up), and the spec-named output."""

from __future__ import annotations

import io
import json

import pytest
from prometheus_client import generate_latest

from runner.errors import UsageError
from runner.output.prometheus import (
    FamilySnapshot,
    MetricsError,
    MetricSpec,
    Sample,
    SpecCollector,
)
from runner.output.prometheus_registry import RunnerStatus, SpecRegistry
from runner.output.spec_sinks import spec_sink
from runner.runtime.options import Options
from runner.runtime.serve import Agent, spec_paths

CALLS = MetricSpec("calls_total", "Calls.", "counter", ("comm",))


def collector(spec: str, n: int, metric: MetricSpec = CALLS) -> SpecCollector:
    return SpecCollector(spec, [metric],
                         lambda: [FamilySnapshot(metric.name, (Sample(("sh",), n),))],
                         spec_label=True)


def samples(registry: SpecRegistry) -> list:
    text = generate_latest(registry.registry).decode()
    return [ln for ln in text.splitlines()
            if ln.startswith(("calls_total", "other_total", "c_total", "ebpf_run_spec_up"))]


def status() -> RunnerStatus:
    return RunnerStatus({}, {})


def test_specs_come_fail_and_go_in_one_registry():
    reg = SpecRegistry(with_up=True)
    reg.add(collector("a", 3), status)
    reg.add(collector("b", 5, MetricSpec("other_total", "Other.", "counter", ("comm",))),
            status)
    reg.remove("c", down=True)  # failed before it had a collector
    assert samples(reg) == [
        'calls_total{comm="sh",spec="a"} 3.0',
        'other_total{comm="sh",spec="b"} 5.0',
        'ebpf_run_spec_up{spec="a"} 1.0',
        'ebpf_run_spec_up{spec="b"} 1.0',
        'ebpf_run_spec_up{spec="c"} 0.0',
    ]
    reg.remove("a")  # stopped (SIGHUP: removed)
    reg.remove("c")  # its file removed
    # back (it loads now): up again
    reg.add(collector("c", 7, MetricSpec("c_total", "C.", "counter", ("comm",))), status)
    assert samples(reg) == ['other_total{comm="sh",spec="b"} 5.0',
                            'c_total{comm="sh",spec="c"} 7.0',
                            'ebpf_run_spec_up{spec="b"} 1.0', 'ebpf_run_spec_up{spec="c"} 1.0']
    assert generate_latest(reg.registry).decode().rstrip().endswith(
        'ebpf_run_spec_up{spec="c"} 1.0')  # ebpf-run's own families stay last


def test_two_specs_may_not_serve_one_metric_name():
    reg = SpecRegistry(with_up=True)
    reg.add(collector("a", 3), status)
    with pytest.raises(MetricsError, match="spec 'b'"):
        reg.add(collector("b", 5), status)
    assert samples(reg) == ['calls_total{comm="sh",spec="a"} 3.0',
                            'ebpf_run_spec_up{spec="a"} 1.0']


def test_a_run_has_no_spec_label_on_its_metrics_nor_spec_up():
    reg = SpecRegistry()
    reg.add(SpecCollector("a", [CALLS], lambda: [FamilySnapshot("calls_total", (
        Sample(("sh",), 3),))]), status)
    assert samples(reg) == ['calls_total{comm="sh"} 3.0']


def test_spec_paths_lists_directories_once_each(tmp_path):
    for name in ("b.yaml", "a.yaml", "notes.txt"):
        (tmp_path / name).write_text("")
    one = str(tmp_path / "b.yaml")
    assert spec_paths([one, str(tmp_path)]) == [one, str(tmp_path / "a.yaml")]


def test_serve_needs_metrics():
    with pytest.raises(UsageError, match="--metrics"):
        Agent(["x.yaml"], Options())


def test_json_records_carry_the_spec_and_text_counts_events_only():
    out, err = io.StringIO(), io.StringIO()
    sink = spec_sink(True, "syscount", out, err)
    sink.event("events", "", {"pid": 1})
    sink.note("ready (1 probe attached)")
    assert json.loads(out.getvalue()) == {"spec": "syscount", "type": "event",
                                          "channel": "events", "data": {"pid": 1}}
    assert err.getvalue() == "ebpf-run: [syscount] ready (1 probe attached)\n"
    out, err = io.StringIO(), io.StringIO()
    sink = spec_sink(False, "syscount", out, err)
    sink.events("events", ["a line"])
    sink.event("events", "another", {})
    sink.aggregation("calls", "@calls:\nCOMM COUNT", [])
    sink.flush()
    assert out.getvalue() == "[syscount]\n@calls:\nCOMM COUNT\n"


def test_serve_cgroup_reaches_every_spec_compile(tmp_path, monkeypatch, capsys):
    """serve --cgroup PATH: resolved once, before anything is compiled (a PATH that names no
    cgroup is a usage error, exit 2), and the pair that carries it is every spec's compile
    parameter, as a run's --cgroup is its one spec's."""
    import runner.pipeline
    import runner.runtime.serve as serve_module
    from runner.cli import main as cli
    from runner.support import cgroups

    root = tmp_path / "cg"
    (root / "n1").mkdir(parents=True)
    (tmp_path / "mountinfo").write_text(f"30 25 0:26 / {root} rw - cgroup2 cgroup2 rw\n")
    monkeypatch.setattr(cgroups, "MOUNTINFO", str(tmp_path / "mountinfo"))
    pair = ("--cgroup", f"{(root / 'n1').stat().st_ino}:1:/n1")

    assert cli.main(["serve", "a.yaml", "--metrics", "127.0.0.1:0", "--cgroup", "/nope"]) == 2
    assert "--cgroup /nope: no such cgroup under the cgroup v2 root" in capsys.readouterr().err

    given = []
    monkeypatch.setattr(serve_module, "serve",
                        lambda specs, options, strict=False: given.append(options.params) or 0)
    assert cli.main(["serve", "a.yaml", "--metrics", "127.0.0.1:0", "--cgroup", "/n1"]) == 0
    assert given == [(pair,)]

    compiled = []

    def compile_spec(path, params=()):
        compiled.append((path, params))
        raise UsageError("stop here")

    class Served:
        def remove(self, name, down=False):
            pass

    monkeypatch.setattr(runner.pipeline, "compile_spec", compile_spec)
    agent = Agent(["a.yaml", "b.yaml"], Options(params=(pair,), metrics="127.0.0.1:0"))
    agent.served = Served()
    agent._reload()
    assert compiled == [("a.yaml", (pair,)), ("b.yaml", (pair,))]


def test_a_fifo_named_like_a_spec_is_refused_not_waited_on(tmp_path):
    """serve read each spec's bytes for its digest with a blocking open: a FIFO named
    x.yaml hung it for good, SIGINT and SIGTERM unheard (a review). It is read as every
    spec is: refused at once as what it is."""
    import os
    import threading

    from runner.runtime.serve import _digest

    fifo = tmp_path / "x.yaml"
    os.mkfifo(fifo)
    got = []
    t = threading.Thread(target=lambda: got.append(_digest(str(fifo))), daemon=True)
    t.start()
    t.join(30)
    assert got and got[0].startswith("unreadable: ") and "it is a FIFO" in got[0]
