"""Stage 3: the meaning checker. Turns a schema-valid document into the model.

The schema has already checked shapes; this stage checks what the names and values mean
(unknown names with hints, types that do not fit, literals too long, tail-call targets,
formats) and collects every problem before raising, so a user fixes a spec in one pass.
The sections run in the order below, each in its own module, sharing one Checker.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence

from runner.check import (
    aggregations,
    limits,
    maps,
    outputs,
    params,
    probes,
    programs,
    stacks,
    structs,
    tests,
)
from runner.check.action_lists import check_list
from runner.check.checker import Checker
from runner.errors import Diagnostic, SpecError
from runner.model.spec import Spec
from runner.spec.loader import Document
from runner.support import syscalls
from runner.support.comment_text import comment_text


def build(doc: Document, arch: Optional[str] = None,
          reported: Sequence[Diagnostic] = ()) -> Spec:
    """Check the meaning of `doc` and return its model; raise SpecError with every problem.
    `reported`: the schema's errors about actions of no known kind, which the checker passes
    over (runner/spec/schema.py UnknownActions), raised with its own."""
    ck = Checker(doc, arch or syscalls.host_arch(), check_list)
    ck.diags.extend(reported)
    spec = _run(ck)
    if ck.diags:
        uniq = {(d.location.line, d.location.col, d.message): d for d in ck.diags}
        raise SpecError(sorted(uniq.values(), key=lambda d: (d.location.line, d.location.col)))
    assert spec is not None
    return spec


def _run(ck: Checker) -> Optional[Spec]:
    structs.check(ck)
    maps.check(ck)
    limits.maps(ck)
    ck.aggregations = aggregations.check(ck)
    maps.add_messages_map(ck)
    declared = params.check(ck)
    program_names = programs.check_names(ck)
    contexts, owners = programs.graph(ck)
    found = []
    for name in ck.data.get("probes", {}):
        probe = probes.check(ck, name)
        if probe:  # filled after its actions are checked: diagnostics keep the spec's order
            found.append(replace(probe, tables=programs.fills(ck, name, owners)))
    progs = [programs.check_program(ck, n, contexts.get(n, ()))
             for n in ck.data.get("programs", {})]
    programs.check_tables(ck, program_names)
    limits.programs(ck, tuple(found), tuple(p for p in progs if p))
    events = outputs.events(ck)
    map_outputs = outputs.map_dumps(ck)
    cases = tests.check(ck)
    if ck.diags:
        return None
    return Spec(
        name=ck.data["name"], file=comment_text(ck.doc.file), arch=ck.arch,
        structs=tuple(ck.structs.values()) + tuple(ck.msg_structs),
        maps=tuple(ck.maps.values()) + tuple(a.map for a in ck.aggregations.values()),
        probes=tuple(found),
        programs=tuple(p for p in progs if p), drops=tuple(ck.drops),
        messages=tuple(ck.messages), messages_via=ck.via,
        message_buffer=ck.messages_map if ck.messages else None,
        events=events, map_outputs=map_outputs, params=declared,
        aggregations=tuple(ck.aggregations.values()), tests=cases,
        stacks=tuple(ck.stack_maps[d] for d in sorted(ck.stack_maps)),
        stack_pids=stacks.PIDS if ck.stack_pids else None,
    )
