"""The action kinds, one module each; ACTIONS is their registry, in the order the docs and
the schema list them. A new kind is a module here, one line below, and its C fragment in
templates/action_<node>.c.j2."""

from __future__ import annotations

from runner.check.actions import aggregate, choose, emit, if_, print_, state, tail_call, update
from runner.check.actions.base import ActionKind
from runner.kinds.registry import Registry

ACTIONS: Registry[ActionKind] = Registry("action")
for _kind in (print_.KIND, update.COUNT, update.ADD, emit.KIND, tail_call.KIND, choose.KIND,
              if_.KIND, state.LET, state.STORE, state.DELETE, aggregate.KIND):
    ACTIONS.register(_kind.name, _kind)

__all__ = ["ACTIONS", "ActionKind"]
