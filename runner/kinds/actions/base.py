"""What an action kind provides. One module per kind beside this one registers it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterable, List

from runner.model.spec import Action

if TYPE_CHECKING:
    from runner.check.checker import Checker
    from runner.check.scope import ActionScope
    from runner.spec.loader import PathKey


class ActionKind:
    """One spec action kind: its meaning check, its model node and its C fragment.

    `check` turns the action's mapping into a model node (or reports and raises Skip);
    codegen renders every node of type `node` with templates/<fragment>.
    """

    name: str  # the action's key in the spec
    node: type  # the model class `check` returns
    fragment: str  # template file that spells `node` in C

    def check(self, ck: Checker, path: PathKey, a: Dict[str, Any], scope: ActionScope,
              origin: str) -> Action:
        raise NotImplementedError

    def nested(self, a: Dict[str, Any]) -> Iterable[List[Dict[str, Any]]]:
        """The action lists inside this action (choose's cases, if's branches)."""
        return ()

    def jumps(self, a: Dict[str, Any]) -> Iterable[str]:
        """The prog_arrays this action tail-calls through (for the tail-call graph)."""
        return ()
