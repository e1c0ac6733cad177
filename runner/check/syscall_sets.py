"""A probe on several syscalls: `syscall: [openat, open, creat]`, `syscall: "stat*"`,
`syscall_exit: "*"` (a list may mix names and globs).

A glob matches the spec names (UAPI names: `stat*` is stat, statfs, statx) of the
syscalls this kernel has an entry tracepoint for (its tracefs, else the shipped table) and
a number in the table, in the order of their numbers; a list keeps its order. Each member
needs an entry point here and, for the one raw attachment, a number.

The probe's `args.NAME` are the arguments every member has alike: the same name at the
same position with the same C type. A name some members have and others do not (or not
alike) is reported where it is used, saying which have it how.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from runner.support import tracepoints
from runner.support.hints import did_you_mean
from runner.support.syscalls import Syscall, lookup

GLOB_CHARS = frozenset("*?[")
_SHOWN = 6  # members listed in a message about an argument, then "and N more"


def is_many(target: Any) -> bool:
    """A list of syscalls or a glob, not one name."""
    return isinstance(target, list) or any(c in GLOB_CHARS for c in str(target))


@dataclass(frozen=True)
class Problem:
    index: Optional[int]  # the list item it is about; None: the target itself
    message: str
    hint: Optional[str] = None


def members(cat: tracepoints.Catalog, target: Any) -> Tuple[List[Syscall], List[Problem]]:
    """The syscalls a list or glob names here, each once, and what is wrong with it."""
    items = target if isinstance(target, list) else [target]
    where = (lambda i: i) if isinstance(target, list) else (lambda i: None)
    known = cat.syscalls()
    out: Dict[str, Syscall] = {}
    problems: List[Problem] = []
    for i, item in enumerate(items):
        if any(c in GLOB_CHARS for c in item):
            found = [s for s in _globbable(cat) if fnmatch.fnmatchcase(s.name, item)]
            if not found:
                problems.append(Problem(where(i), f"'{item}' matches no syscall on {cat.arch}",
                                        f"globs match the syscall names of {cat.source}"))
            out.update((s.name, s) for s in found if s.name not in out)
            continue
        sc = lookup(item, known)
        if sc is None:
            problems.append(Problem(where(i), f"unknown syscall '{item}' on {cat.arch}",
                                    did_you_mean(item, known)))
        elif sc.entry is None:
            problems.append(Problem(where(i), f"syscall '{item}' has no entry point on "
                                    f"{cat.arch}: the kernel does not implement it"))
        elif sc.name in out and item in items[:i]:
            problems.append(Problem(where(i), f"syscall '{item}' is listed twice"))
        else:
            out.setdefault(sc.name, sc)
    return list(out.values()), problems


def _globbable(cat: tracepoints.Catalog) -> List[Syscall]:
    """What a glob ranges over: numbered syscalls with an entry tracepoint here (all the
    numbered ones with an entry where the kernel has no syscall tracepoints at all)."""
    numbered = sorted((s for s in cat.syscalls().values()
                       if s.number is not None and s.enter_tracepoint),
                      key=lambda s: s.number or 0)
    traced = [s for s in numbered if cat.has(s.enter_tracepoint or "")]
    return traced or numbered


def describe(names: List[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def unshared(have: Dict[str, Dict[str, Tuple[int, str]]], member: str = "syscall",
             place: str = "argument") -> Dict[str, str]:
    """For each name some members have but not all alike, the message its use gets.
    `have`: member (a syscall, a tracepoint), in order -> name -> (position, declaration);
    `member` and `place` word the message (a tracepoint's field is at an offset)."""
    out = {}
    names = sorted({n for args in have.values() for n in args})
    for name in names:
        seen = {args.get(name) for args in have.values()}
        if len(seen) == 1 and None not in seen:
            continue  # shared alike
        lacking = [m for m, args in have.items() if name not in args]
        alike: Dict[Tuple[int, str], List[str]] = {}
        for m, args in have.items():
            if name in args:
                alike.setdefault(args[name], []).append(m)
        parts = [f"{describe(group)}: {place} {pos} ({decl})"
                 for (pos, decl), group in alike.items()]
        if lacking:
            parts.append(f"{describe(lacking)}: none")
        out[name] = (f"args.{name} is not the same {place} in every {member} of this probe "
                     f"({'; '.join(parts)})")
    return out
