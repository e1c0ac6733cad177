"""The probes section: each attach option expands (runner/kinds/attach.py) into candidates,
each with its own generated function; the probe's actions are checked once for all of them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Optional, Set, Tuple

from runner.check import exits
from runner.check.actions import check_list, tail_maps
from runner.check.checker import Checker
from runner.check.fields import probe_args
from runner.check.scope import ActionScope
from runner.codegen.strings import comment_text
from runner.kinds import builtins as bi
from runner.kinds.attach import CANDIDATE_KINDS, CONTEXTS, OPTIONS, Planned
from runner.model.spec import Action, Candidate, Function, Probe
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean

Option = Tuple[Planned, PathKey]  # a candidate and the attach option it came from


def check(ck: Checker, name: str) -> Optional[Probe]:
    """The probe without its table fills (runner/check/programs.py adds those)."""
    path: PathKey = ("probes", name)
    raw = ck.data["probes"][name]
    planned = [(exits.resolve(ck, p), pp) for p, pp in options(ck, name)]
    scope = ActionScope(tuple(p.context for p, _ in planned), args=probe_args(ck, name))
    actions = check_list(ck, (*path, "do"), raw["do"], scope)  # checked either way
    if not planned:
        return None
    out = []
    for p, ppath in planned:
        by_bcc = CANDIDATE_KINDS.lookup(p.kind).named_by_bcc
        if by_bcc and not _bcc_named_ok(ck, ppath, name, p, raw["do"]):
            continue
        fn = function(p.variant if by_bcc else f"er_{name}__{p.variant}", p.context,
                      p.filter_nr, scope.needs, actions)
        if by_bcc:
            fn = replace(fn, kfunc=p.target)
        describe = comment_text(f"{p.kind} {p.target}" if not p.syscall else
                                f"{p.kind} on the {p.syscall} syscall")
        out.append(Candidate(p.kind, p.target, p.syscall, fn, describe))
    return Probe(name, ck.origin(path), bool(raw.get("optional", False)), tuple(out), ())


def options(ck: Checker, name: str) -> List[Option]:
    """Every candidate of a probe's attach options, in the order they are tried."""
    raw = ck.data["probes"][name]["attach"]
    items = raw if isinstance(raw, list) else [raw]
    base: PathKey = ("probes", name, "attach")
    out: List[Option] = []
    for i, item in enumerate(items):
        path = (*base, i) if isinstance(raw, list) else base
        (key, target), = item.items()
        option = OPTIONS.lookup(key)
        nr = None
        if option.syscall_target:
            nr = ck.sysnums.get(target)
            if nr is None:
                if ck.sysnums:
                    ck.err((*path, key), f"unknown syscall '{target}' on {ck.arch}",
                           did_you_mean(target, ck.sysnums))
                continue
        suffix = str(i) if isinstance(raw, list) else ""
        out += [(p, path) for p in option.expand(target, nr, suffix)]
    # Two options of the same kind need distinct function names.
    variants = [p.variant for p, _ in out]
    return [(p, path) if CANDIDATE_KINDS.lookup(p.kind).named_by_bcc
            or variants.count(p.variant) == 1 else (replace(p, variant=f"{p.variant}{i}"), path)
            for i, (p, path) in enumerate(out)]


def _bcc_named_ok(ck: Checker, path: PathKey, probe: str, p: Planned, actions: Any) -> bool:
    """An fentry program is named after its function: one probe each, and no tail calls."""
    owner = ck.fentry_owners.setdefault(p.target, probe)
    if owner != probe:
        ck.err((*path, p.kind), f"fentry {p.target} is already used by probe '{owner}'",
               "BCC names a trampoline program after its function, so one per function",
               key=True)
        return False
    if tail_maps(actions):
        ck.err((*path, p.kind), "a probe with an fentry option cannot tail_call",
               "tail-call targets must match the caller's program type; use kprobe or "
               "a tracepoint for dispatchers", key=True)
        return False
    return True


def function(c_name: str, ctx: str, nr: Optional[int], needs: Set[str],
             actions: Tuple[Action, ...]) -> Function:
    args = tuple(sorted(int(n[3:]) for n in needs if n.startswith("arg")))
    helpers = tuple(h for h, names in bi.HELPER_LOCALS.items() if needs & names)
    context = CONTEXTS.lookup(ctx)
    return Function(c_name, ctx, context.prog_type, nr,
                    "syscall_nr" in needs, args, actions, helpers=helpers)
