"""SIGINT and SIGTERM held from the command's first line (runner/__main__.py imports this
before anything else).

Only `_signal`, the interpreter's built-in module: `signal` would import enum and typing
first (40 ms here), during which a signal kills the process (SIGTERM: exit 143 in a
shell) or interrupts an import (SIGINT: a KeyboardInterrupt traceback). Held signals are
taken over by the run as stop requests (runtime/signals.py) and by other commands as an
interruption (cli/main.py).

What no code of ours can catch: a signal while the interpreter itself starts (its own
initialisation and `site`, 20-70 ms here) and while the console script imports `re`
before importing us. The README (after the exit codes) says what that looks like.
"""

import _signal

# Signals that arrived while held, oldest first.
HELD: list = []


def _hold(signum: int, _frame: object) -> None:
    HELD.append(signum)


def hold_signals() -> None:
    for s in (_signal.SIGINT, _signal.SIGTERM):
        _signal.signal(s, _hold)
