"""ActionScope: where a list of actions runs, and what it asks of the function around it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Set, Tuple


@dataclass
class ActionScope:
    """The contexts the actions' functions run in (a probe's attach candidates, or the
    contexts of the probes that tail-call a program), and the built-ins they read.

    Mutable while one probe or program is checked: each built-in an action uses is added to
    `needs`, which then shapes the function's prologue (syscall_nr and argN are computed
    there, per context; pid/tid and uid/gid share one helper call each).
    """

    contexts: Tuple[str, ...]
    needs: Set[str] = field(default_factory=set)
    # The syscall tracepoint whose record has the fewest arguments among the probe's
    # options, and their names: argN past them reads another field or past the record.
    args: Optional[Tuple[str, Tuple[str, ...]]] = None
