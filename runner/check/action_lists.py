"""Action lists: each action is checked by its kind, found in the registry by name
(runner/check/actions). This module knows no kind by name."""

from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Set, Tuple

from runner.check.actions import ACTIONS, ActionKind
from runner.check.checker import Checker, Skip
from runner.check.resolve import UNKNOWN
from runner.check.scope import ActionScope
from runner.kinds.builtins import BUILTINS
from runner.kinds.registry import UnknownKind
from runner.model.spec import Action
from runner.spec.loader import PathKey


def kind_of(a: Dict[str, Any]) -> Optional[ActionKind]:
    """An action's kind: the one key of the mapping that names a kind (`if` has its branches
    beside it, in any order). None for an action of no known kind, which the schema reported
    (runner/spec/schema.py UnknownActions): the checker passes over it to report the rest.
    The schema admits nothing else."""
    found = [k for k in a if k in ACTIONS]
    if not found:
        return None
    if len(found) != 1:
        raise UnknownKind(f"internal error: no one action kind among the keys {sorted(a)}")
    return ACTIONS.lookup(found[0])


def check_list(ck: Checker, path: PathKey, raw: List[Dict[str, Any]],
               scope: ActionScope) -> Tuple[Action, ...]:
    out: List[Action] = []
    for i, a in enumerate(raw):
        apath = (*path, i)
        kind = kind_of(a)
        if kind is None:
            _names_of_unknown(a, scope)
            continue
        with contextlib.suppress(Skip):
            out.append(kind.check(ck, apath, a, scope, f"{ck.origin(apath)} {kind.name}"))
    return tuple(out)


def _names_of_unknown(a: Dict[str, Any], scope: ActionScope) -> None:
    """An action of no known kind (reported by the schema) may be a misspelt `let`
    (`lett: {x: ...}`): the one name its mapping gives is taken as a value of unknown type,
    so its uses after it are not reported as unknown names. (Mappings of several keys are
    the shapes of other actions: `{map: ..., key: ...}` names nothing.)"""
    for value in a.values():
        if isinstance(value, dict) and len(value) == 1:
            (name,) = value
            if name not in BUILTINS:
                scope.locals.setdefault(name, UNKNOWN)


def tail_maps(actions: Any) -> Set[str]:
    """The prog_arrays an action list (and the lists nested in it) tail-calls through."""
    found: Set[str] = set()
    for a in actions if isinstance(actions, list) else []:
        kind = kind_of(a)
        if kind is None:
            continue
        found |= set(kind.jumps(a))
        for nested in kind.nested(a):
            found |= tail_maps(nested)
    return found
