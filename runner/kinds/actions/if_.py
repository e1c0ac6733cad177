"""`if: CONDITION, then: [actions], else: [actions]`. The condition language is parsed by
runner/check/expr.py; built-ins in it are checked for the scope's contexts."""

from __future__ import annotations

from typing import Any, Dict, Iterable, List

from runner.check import expr
from runner.check.checker import Checker, Skip
from runner.check.scope import ActionScope
from runner.check.values import use_builtin
from runner.kinds.actions.base import ActionKind
from runner.kinds.builtins import BUILTINS
from runner.model.expr import Condition
from runner.model.spec import If
from runner.spec.loader import PathKey
from runner.support.hints import did_you_mean


class IfKind(ActionKind):
    name = "if"
    node = If
    fragment = "action_if.c.j2"

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> If:
        cond = _condition(ck, (*path, "if"), a["if"], scope)
        then = ck.actions((*path, "then"), a["then"], scope)
        other = ck.actions((*path, "else"), a.get("else", []), scope)
        return If(origin, cond, then, other)

    def nested(self, a: Dict[str, Any]) -> Iterable[List[Dict[str, Any]]]:
        return [a["then"], a.get("else", [])]


def _condition(ck: Checker, path: PathKey, text: str, scope: ActionScope) -> Condition:
    def check_name(name: str, col: int) -> None:
        b = BUILTINS.get(name)
        if b is None or b.name == "comm":
            hint = did_you_mean(name, BUILTINS)
            raise expr.ExprError(f"unknown built-in '{name}' in condition"
                                 + (f" ({hint})" if hint else ""), col)
        use_builtin(ck, path, name, scope)

    try:
        c, _ = expr.parse_condition(text, check_name)
    except expr.ExprError as e:
        ck.err(path, f"bad condition: {e}")
        raise Skip from None
    return c


KIND = IfKind()
