"""`choose: {value, cases: {label: [actions]}, default: [actions]}`: a C switch. Labels are
integers, or syscall names when the value is syscall_nr."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from runner.check.actions.base import ActionKind
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.check.values import scalar_value
from runner.model.expr import Value
from runner.model.spec import Case, Choose
from runner.model.types import SCALARS
from runner.spec.loader import PathKey


class ChooseKind(ActionKind):
    name = "choose"
    node = Choose

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Choose:
        c = a["choose"]
        here = (*path, "choose")
        try:
            value: Optional[Value] = scalar_value(ck, (*here, "value"), c["value"],
                                                  SCALARS["s64"], scope)
        except Skip:
            value = None  # reported; the cases' own errors are still worth reporting
        by_syscall = c["value"] in ("syscall_nr", "syscall_name")
        cases = []
        seen: Dict[int, str] = {}
        for label, acts in c["cases"].items():
            cpath = (*here, "cases", label)
            num = _label(ck, cpath, label, by_syscall)
            if num is not None and num in seen:
                ck.err(cpath, f"case '{label}' repeats case '{seen[num]}' ({num})", key=True)
            if num is not None:
                seen[num] = label
            body = ck.actions(cpath, acts, scope)
            shown = label if not label.lstrip("-").isdigit() else ""
            cases.append(Case((num if num is not None else 0,), shown, body))
        if "default" in c:
            cases.append(Case((), "default", ck.actions((*here, "default"), c["default"],
                                                        scope)))
        if value is None:
            raise Skip
        return Choose(origin, value, tuple(cases))

    def nested(self, a: Dict[str, Any]) -> Iterable[List[Dict[str, Any]]]:
        c = a["choose"]
        return [*c["cases"].values(), c.get("default", [])]


def _label(ck: Checker, path: PathKey, label: str, by_syscall: bool) -> Optional[int]:
    if label.lstrip("-").isdigit():
        if len(label) > 21 or not -(2**63) <= int(label) < 2**64:
            ck.err(path, f"case '{label[:24]}' does not fit in 64 bits", key=True)
            return None
        return int(label)
    if not by_syscall:
        ck.err(path, f"case '{label}' is not a number", "cases are syscall names only "
               "when the value is syscall_nr", key=True)
        return None
    return ck.slot(path, label)


KIND = ChooseKind()
