"""`--folded FILE` and `--flamegraph FILE`: at the end of a run, every count or sum
aggregation with a stack key field, as folded stacks (`comm;outer;...;inner count`, what
flamegraph.pl, inferno and speedscope read) or as ebpf-run's own SVG flame graph.

What is written is what the kernel holds at the end (a full read, whatever `clear` did to
the dumps; keys an every+clear aggregation evicted are gone). The root of each path is the
key's first text field (comm, usually), else the aggregation's name. Several such
aggregations go into one file, their equal paths added up: a spec meant for a flame graph
has one.
"""

from __future__ import annotations

from typing import Any, Dict, List

from runner.errors import EnvironmentProblem, UsageError
from runner.model.aggregates import Entry
from runner.model.spec import Aggregation, Spec
from runner.output.flamegraph import flame_graph, parse_folded
from runner.output.stacks import Sample, folded
from runner.runtime.aggdump import Aggregations, shown
from runner.runtime.options import Options
from runner.runtime.stacks import resolved
from runner.support.cache_dir import Refused, write_output

KINDS = ("count", "sum")  # a value that adds up along a stack: a flame graph's width


def stack_aggregations(spec: Spec) -> List[Aggregation]:
    return [a for a in spec.aggregations if a.has_stacks and a.kind in KINDS]


def check(spec: Spec, options: Options) -> None:
    """Refuse --folded and --flamegraph for a spec with nothing to put in them."""
    for flag, path in (("--folded", options.folded), ("--flamegraph", options.flamegraph)):
        if path is not None and not stack_aggregations(spec):
            raise UsageError(f"{flag}: spec '{spec.name}' has no count or sum aggregation "
                             "with a kstack or ustack key field")


def write(spec: Spec, options: Options, aggs: Aggregations, maps: Any) -> None:
    if options.folded is None and options.flamegraph is None:
        return
    lines = folded_lines(spec, aggs, maps)
    if options.folded is not None:
        _write(options.folded, "--folded", "".join(f"{line}\n" for line in lines))
    if options.flamegraph is not None:
        names = ", ".join(a.name for a in stack_aggregations(spec))
        svg = flame_graph(parse_folded(lines), f"{spec.name}: {names}")
        _write(options.flamegraph, "--flamegraph", svg)


def folded_lines(spec: Spec, aggs: Aggregations, maps: Any) -> List[str]:
    samples = []
    for agg in stack_aggregations(spec):
        values = aggs.dumps[agg.name].reader.read(maps.map_items(agg.map))
        entries = [Entry(k, shown(agg, v)) for k, v in values.items()]
        samples += [_sample(agg, parts, e.value)
                    for parts, e in resolved(aggs.stacks, maps, agg, entries)]
    return folded(samples)


def _sample(agg: Aggregation, parts: Any, value: Any) -> Sample:
    """The first kstack, the first ustack and the first text field of a key."""
    stacks: Dict[str, Any] = {}
    text = None
    for k, part in zip(agg.keys, parts):
        if k.type.is_stack:
            stacks.setdefault(k.type.base, part)
        elif text is None and k.type.is_string:
            text = str(part)
    return Sample(stacks.get("kstack", ()), stacks.get("ustack", ()),
                  agg.name if text is None else text, int(value or 0))


def _write(path: str, flag: str, text: str) -> None:
    """As render --out writes: no link another user planted on the way, or at the name,
    decides what root overwrites (support/cache_dir.py)."""
    try:
        write_output(path, text.encode("utf-8"))
    except Refused as e:
        raise EnvironmentProblem(f"{flag} {path}: {e}") from None
    except OSError as e:
        raise EnvironmentProblem(f"{flag} {path}: {e.strerror or e}") from None
