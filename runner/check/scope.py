"""ActionScope: where a list of actions runs, and what it asks of the function around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, Optional, Set, Tuple

if TYPE_CHECKING:
    from runner.check.arith import Typed
    from runner.check.fields import Arg


@dataclass
class ActionScope:
    """The contexts the actions' functions run in (a probe's attach candidates, or the
    contexts of the probes that tail-call a program), and the built-ins they read.

    Mutable while one probe or program is checked: each built-in an action uses is added to
    `needs`, which then shapes the function's prologue (syscall_nr and argN are computed
    there, per context; pid/tid and uid/gid share one helper call each). `named` are the
    probe's named arguments (runner/check/fields.py); `locals` the values `let` named so
    far in this list ("x", and "x.field" for a struct), visible to the actions after it.
    """

    contexts: Tuple[str, ...]
    needs: Set[str] = field(default_factory=set)
    # The syscall tracepoint whose record has the fewest arguments among the probe's
    # options, and their names: argN past them reads another field or past the record.
    args: Optional[Tuple[str, Tuple[str, ...]]] = None
    named: Dict[str, Arg] = field(default_factory=dict)
    locals: Dict[str, Typed] = field(default_factory=dict)
    tail_called: bool = False  # a program's actions (a probe's own: False)
    # Of a probe on several syscalls: names some have and others not (or not alike), each
    # with the message its use gets (runner/check/syscall_sets.py).
    unshared: Dict[str, str] = field(default_factory=dict)

    def nested(self) -> ActionScope:
        """A branch's scope: it sees the names made so far, its own stay inside it (as the
        C block it becomes), and what it reads still shapes the function's prologue."""
        return ActionScope(self.contexts, self.needs, self.args, self.named,
                           dict(self.locals), self.tail_called, self.unshared)
