"""`if: CONDITION, then: [actions], else: [actions]`. The condition language is parsed by
runner/check/arith.py; names in it are resolved by runner/check/names.py, built-ins checked
for the scope's contexts."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from runner.check import arith, expr, resolve
from runner.check.actions.base import ActionKind
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.model.expr import Condition
from runner.model.spec import If
from runner.spec.loader import PathKey


class IfKind(ActionKind):
    name = "if"
    node = If

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> If:
        try:
            cond: Optional[Condition] = _condition(ck, (*path, "if"), a["if"], scope)
        except Skip:
            cond = None  # reported; the branches' own errors are still worth reporting
        then = ck.actions((*path, "then"), a["then"], scope)
        other = ck.actions((*path, "else"), a.get("else", []), scope)
        if cond is None:
            raise Skip
        return If(origin, cond, then, other)

    def nested(self, a: Dict[str, Any]) -> Iterable[List[Dict[str, Any]]]:
        return [a["then"], a.get("else", [])]


def _condition(ck: Checker, path: PathKey, text: str, scope: ActionScope) -> Condition:
    try:
        return arith.parse_condition(text, resolve.resolver(ck, path, scope))
    except expr.ExprError as e:
        ck.err_in(path, text, e.column, f"bad condition: {e}")
        raise Skip from None


KIND = IfKind()
