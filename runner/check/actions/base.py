"""What an action kind provides. One module per kind beside this one registers it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List

from runner.model.spec import Action

if TYPE_CHECKING:
    from runner.check.checker import Checker
    from runner.check.scope import ActionScope
    from runner.spec.loader import PathKey


class ActionKind:
    """One spec action kind: its meaning check and its model node.

    `check` turns the action's mapping into a model node (or reports and raises Skip);
    codegen renders every node of type `node` with the template named after the node's class
    (runner/codegen/render.py action_fragment: TailCall -> templates/action_tail_call.c.j2).
    """

    name: str  # the action's key in the spec
    node: type  # the model class `check` returns

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Action:
        raise NotImplementedError

    def nested(self, a: Dict[str, Any]) -> Iterable[List[Dict[str, Any]]]:
        """The action lists inside this action (choose's cases, if's branches)."""
        return ()

    def jumps(self, a: Dict[str, Any]) -> Iterable[str]:
        """The prog_arrays this action tail-calls through (for the tail-call graph)."""
        return ()
