"""The probes section: each attach option expands (runner/kinds/attach.py) into candidates,
each with its own generated function; the probe's actions are checked once for all of them."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Dict, List, Optional, Set, Tuple

from runner.check import exits, params, syscall_sets
from runner.check.action_lists import check_list, tail_maps
from runner.check.checker import Checker
from runner.check.fields import probe_args, probe_unshared, tracepoint_matches
from runner.check.scope import ActionScope
from runner.kinds import builtins as bi
from runner.kinds import perf_events
from runner.kinds.attach import CANDIDATE_KINDS, CONTEXTS, OPTIONS, AttachOption, Planned
from runner.model.spec import Action, Candidate, Function, Probe
from runner.spec.loader import PathKey
from runner.support.comment_text import comment_text
from runner.support.hints import did_you_mean

SYSCALL_ENTER = "syscalls:sys_enter_"
SYSCALL_EXIT = "syscalls:sys_exit_"
Option = Tuple[Planned, PathKey]  # a candidate and the attach option it came from


def check(ck: Checker, name: str) -> Optional[Probe]:
    """The probe without its table fills (runner/check/programs.py adds those)."""
    path: PathKey = ("probes", name)
    raw = ck.data["probes"][name]
    planned = [(exits.resolve(ck, p), pp) for p, pp in options(ck, name)]
    scope = ActionScope(tuple(p.context for p, _ in planned), args=syscall_args(ck, planned),
                        named=probe_args(ck, name), unshared=probe_unshared(ck, name))
    actions = check_list(ck, (*path, "do"), raw["do"], scope)  # checked either way
    if not planned:
        return None
    out = []
    for p, ppath in planned:
        by_bcc = CANDIDATE_KINDS.lookup(p.kind).named_by_bcc
        if by_bcc and not _bcc_named_ok(ck, ppath, name, p, raw["do"]):
            continue
        fn = function(p.variant if by_bcc else f"er_{name}__{p.variant}", p.context,
                      p.filter_nr, scope.needs, actions, p.filter_nrs)
        if by_bcc:
            fn = replace(fn, kfunc=p.target)
        if p.number is not None:
            fn = replace(fn, syscall_number=p.number)
        out.append(Candidate(p.kind, p.target, p.syscall, fn, _describe(p), p.template,
                             p.more))
    return Probe(name, ck.origin(path), bool(raw.get("optional", False)), tuple(out), ())


def _describe(p: Planned) -> str:
    if p.syscall:
        return comment_text(f"{p.kind} on the {p.syscall} syscall")
    if p.filter_nrs:
        return comment_text(f"{p.kind} {p.target} for {len(p.filter_nrs)} syscalls")
    if p.more and p.target.startswith((SYSCALL_ENTER, SYSCALL_EXIT)):
        prefix = SYSCALL_ENTER if p.target.startswith(SYSCALL_ENTER) else SYSCALL_EXIT
        return comment_text(f"{p.kind}s {prefix}NAME of {len(p.more) + 1} syscalls")
    if p.more:
        return comment_text(f"{p.kind}s {p.target} and {len(p.more)} more")
    return comment_text(f"{p.kind} {p.target}")


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
        suffix = str(i) if isinstance(raw, list) else ""
        if option.syscall_target and syscall_sets.is_many(target):
            found = _syscalls(ck, (*path, key), target, option, suffix)
            out += [(p, path) for p in found]
            continue
        if option.syscall_target:
            found = _syscall(ck, (*path, key), target, option, suffix)
            out += [(p, path) for p in found]
            continue
        if key == "tracepoint" and syscall_sets.is_many(target):
            out += [(p, path) for p in _tracepoints(ck, (*path, key), target, option, suffix)]
            continue
        if option.perf_event:
            out += [(p, path) for p in _sampling(ck, (*path, key), option, target, suffix)]
            continue
        out += [(p, path) for p in option.expand(target, None, suffix)]
    # Two options of the same kind need distinct function names.
    variants = [p.variant for p, _ in out]
    return [(p, path) if CANDIDATE_KINDS.lookup(p.kind).named_by_bcc
            or variants.count(p.variant) == 1 else (replace(p, variant=f"{p.variant}{i}"), path)
            for i, (p, path) in enumerate(out)]


def _sampling(ck: Checker, path: PathKey, option: AttachOption, target: str,
              suffix: str) -> Tuple[Planned, ...]:
    """A sampling option's candidate, each `{params.NAME}` in its text filled with that
    parameter's default and the result checked as a literal is (`apply` does both again)."""
    names = params.placeholders(target)
    unknown = [n for n in names if n not in ck.params]
    for n in unknown:
        ck.unknown(path, "parameter", n, ck.params)
    if unknown:
        return ()
    text = params.fill(target, ck.params)
    try:
        perf_events.parse(option.name, text)
    except perf_events.PerfEventError as e:
        ck.err(path, str(e) + (f" (from '{target}')" if names else ""))
        return ()
    planned = option.expand(text, None, suffix)
    if not names:
        return planned
    template, = option.expand(target, None, suffix)
    return tuple(replace(p, template=template.target) for p in planned)


def _syscall(ck: Checker, path: PathKey, name: str, option: AttachOption,
             suffix: str) -> Tuple[Planned, ...]:
    """A syscall's candidates, named as the running kernel names it: `fstat` is
    sys_enter_newfstat and __x64_sys_newfstat (the catalog knows each entry name)."""
    if not ck.sysnums:
        return ()  # no table for this architecture: reported once by the Checker
    sc = ck.catalog().syscall(name)
    if sc is None:
        ck.err(path, f"unknown syscall '{name}' on {ck.arch}",
               did_you_mean(name, ck.catalog().syscalls()))
        # The spec fails already; the options' contexts still let the checker go on to
        # the programs this probe tail-calls, so their own errors are reported too.
        return option.expand(name, None, suffix)
    entry = sc.entry or name
    # The kprobe keeps the spec's name for messages; BCC finds the function by the entry.
    return tuple(replace(p, target=name, syscall=entry) if p.syscall else p
                 for p in option.expand(entry, sc.number, suffix))


def _syscalls(ck: Checker, path: PathKey, target: Any, option: AttachOption,
              suffix: str) -> Tuple[Planned, ...]:
    """The candidates of a probe on several syscalls (runner/check/syscall_sets.py)."""
    if not ck.sysnums or option.expand_many is None:
        return ()  # no table for this architecture: reported once by the Checker
    found, problems = syscall_sets.members(ck.catalog(), target)
    for pr in problems:
        ck.err(path if pr.index is None else (*path, pr.index), pr.message, pr.hint)
    if problems or not found:
        return ()
    numbers = tuple(sorted(s.number for s in found if s.number is not None))
    entries = tuple(s.entry or s.name for s in found)
    return option.expand_many(entries, numbers if len(numbers) == len(found) else (), suffix)


def _tracepoints(ck: Checker, path: PathKey, pattern: str, option: AttachOption,
                 suffix: str) -> Tuple[Planned, ...]:
    """A glob of tracepoints: one candidate attaching the one function to each match."""
    found = tracepoint_matches(ck.catalog(), pattern)
    if not found:
        ck.err(path, f"'{pattern}' matches no tracepoint",
               f"tracepoints are those of {ck.catalog().source}")
        return ()
    planned = [p for t in found for p in option.expand(t, None, suffix)]
    first: Dict[str, str] = {}  # context -> its first tracepoint
    for p in planned:
        first.setdefault(p.context, p.target)
    if len(first) > 1:
        ck.err(path, f"'{pattern}' matches tracepoints of different kinds: "
               + ", ".join(sorted(first.values())),
               "syscall entries, syscall exits and other tracepoints run other code: a glob "
               "names one kind")
        return ()
    return (replace(planned[0], more=tuple(found[1:])),)


def syscall_args(ck: Checker, planned: List[Option]) -> Optional[Tuple[str, Tuple[str, ...]]]:
    """The syscall tracepoint with the fewest arguments among a probe's candidates."""
    found = []
    for target in (t for p, _ in planned if p.kind == "tracepoint"
                   for t in (p.target, *p.more)):
        if target.startswith(SYSCALL_ENTER):
            fmt = ck.catalog().format(target)
            if fmt is not None:
                found.append((target[len(SYSCALL_ENTER):],
                              tuple(f.name for f in fmt.syscall_args)))
    return min(found, key=lambda f: len(f[1])) if found else None


def _bcc_named_ok(ck: Checker, path: PathKey, probe: str, p: Planned, actions: Any) -> bool:
    """An fentry program is named after its function: one probe each, and no tail calls."""
    owner, first = ck.fentry_owners.setdefault(p.target, (probe, path))
    if owner != probe or first != path:
        where = f"probe '{owner}'" if owner != probe else "an earlier option of this probe"
        ck.err((*path, p.kind), f"fentry {p.target} is already used by {where}",
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
             actions: Tuple[Action, ...], nrs: Tuple[int, ...] = ()) -> Function:
    args = tuple(sorted(int(n[3:]) for n in needs if n.startswith("arg")))
    helpers = tuple(h for h, names in bi.HELPER_LOCALS.items() if needs & names)
    context = CONTEXTS.lookup(ctx)
    return Function(c_name, ctx, context.prog_type, nr, bool(needs & bi.NEEDS_NR), args,
                    actions, helpers=helpers, filter_nrs=nrs)
