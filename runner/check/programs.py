"""Tail calls: the programs section, the tail_calls tables, and the graph between them.

A tail-call target runs with its caller's context, so it is generated once for each context
of the probes that reach it. A prog_array can only hold programs of one type, so only one
probe may reach it; that probe fills it before it attaches.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from runner.check.action_lists import check_list, tail_maps
from runner.check.checker import Checker
from runner.check.names import name_ok
from runner.check.probes import function, options
from runner.check.scope import ActionScope
from runner.kinds.maps import MAP_KINDS, PROG_ARRAY
from runner.model.spec import Program, TableFill
from runner.spec.loader import PathKey

Contexts = Dict[str, Tuple[str, ...]]  # program -> the contexts it runs in
Owners = Dict[str, str]  # prog_array -> the one probe that reaches it


def check_names(ck: Checker) -> Set[str]:
    """Probe and program names (one namespace); returns the program names."""
    probes = ck.data.get("probes", {})
    programs = ck.data.get("programs", {})
    for name in probes:
        name_ok(ck, ("probes", name), name, "probe")
    for name in programs:
        name_ok(ck, ("programs", name), name, "program")
        if name in probes:
            ck.err(("programs", name), f"'{name}' is both a probe and a program",
                   "probes and programs share one namespace", key=True)
    return set(programs)


def _table_programs(ck: Checker, mapname: str) -> List[str]:
    table = ck.data.get("tail_calls", {}).get(mapname, {})
    progs = [table["default"]] if "default" in table else []
    return progs + list(table.get("entries", {}).values())


def graph(ck: Checker) -> Tuple[Contexts, Owners]:
    """Which contexts each program runs in, and which probe owns each prog_array."""
    programs = ck.data.get("programs", {})
    contexts: Dict[str, Set[str]] = {}
    owners: Owners = {}
    for pname, probe in ck.data.get("probes", {}).items():
        ctxs = {p.context for p, _ in options(ck, pname)} if "attach" in probe else set()
        todo = list(tail_maps(probe.get("do", [])))
        seen: Set[str] = set()
        while todo:
            mname = todo.pop()
            if mname in seen:
                continue
            seen.add(mname)
            if mname in owners and owners[mname] != pname:
                ck.err(("probes", pname), f"prog_array '{mname}' is reached from probes "
                       f"'{owners[mname]}' and '{pname}'; a program array holds "
                       "programs of one type, so only one probe may use it", key=True)
            owners[mname] = pname
            for prog in _table_programs(ck, mname):
                if prog in programs:
                    contexts.setdefault(prog, set()).update(ctxs)
                    todo += list(tail_maps(programs[prog].get("do", [])))
    return {k: tuple(sorted(v)) for k, v in contexts.items()}, owners


def check_program(ck: Checker, name: str, ctxs: Tuple[str, ...]) -> Optional[Program]:
    path: PathKey = ("programs", name)
    if not ctxs:
        ck.err(path, f"program '{name}' is never reached: no probe tail-calls "
               "through a table that holds it", "add it to a tail_calls table that a "
               "probe's tail_call uses", key=True)
        return None
    scope = ActionScope(ctxs, tail_called=True)
    actions = check_list(ck, (*path, "do"), ck.data["programs"][name]["do"], scope)
    fns = tuple(function(f"er_{name}__{ctx}", ctx, None, scope.needs, actions)
                for ctx in ctxs)
    return Program(name, ck.origin(path), fns)


def fills(ck: Checker, probe: str, owners: Owners) -> Tuple[TableFill, ...]:
    """The prog_arrays `probe` owns, with what to put in them."""
    return tuple(_fill(ck, m) for m, owner in sorted(owners.items())
                 if owner == probe and m in ck.maps)


def _fill(ck: Checker, mapname: str) -> TableFill:
    m = ck.maps[mapname]
    table = ck.data.get("tail_calls", {}).get(mapname)
    if table is None:
        return TableFill(m, None, ())
    entries = []
    for label, prog in table.get("entries", {}).items():
        slot_nr = ck.slot(("tail_calls", mapname, "entries", label), label)
        if slot_nr is not None:
            entries.append((slot_nr, prog, label))
    return TableFill(m, table.get("default"), tuple(entries))


def check_tables(ck: Checker, programs: Set[str]) -> None:
    for mapname, table in ck.data.get("tail_calls", {}).items():
        path: PathKey = ("tail_calls", mapname)
        m = ck.maps.get(mapname)
        if m is None or MAP_KINDS.lookup(m.kind).family != PROG_ARRAY:
            ck.not_a(path, mapname, "prog_array", key=True)
            continue
        if "default" in table and table["default"] not in programs:
            ck.unknown((*path, "default"), "program", table["default"], programs)
        for label, prog in table.get("entries", {}).items():
            epath = (*path, "entries", label)
            if prog not in programs:
                ck.unknown(epath, "program", prog, programs)
            slot_nr = ck.slot(epath, label) if label.isdigit() else ck.sysnums.get(label)
            if slot_nr is not None and slot_nr >= m.max_entries:
                ck.err(epath, f"slot {slot_nr} ({label}) is outside '{mapname}', which has "
                       f"{m.max_entries} entries", key=True)
