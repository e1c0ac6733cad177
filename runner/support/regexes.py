"""Regex searches with a time bound and ASCII semantics, for captures and `regex` conditions.

The text searched is chosen by whoever the probe watches (a file name, a command line), so
a pattern that backtracks catastrophically on it would spin until Ctrl-C. Python's `re`
checks for signals as it backtracks (that is why Ctrl-C stops it), so a periodic timer
whose handler raises once a search has run SECONDS ends it. The third-party `regex` module has a
timeout argument, but it is not a dependency, and a child process per search would cost a
fork per record. The bound needs the main thread (only it receives signals): `ebpf-run
test` matches there; elsewhere the search is unbounded.

ASCII: `\\d` is [0-9] and `\\w` [A-Za-z0-9_], so a capture of Arabic-Indic digits is no number
and a pattern means what it says in the spec.
"""

from __future__ import annotations

import contextlib
import re
import signal
import threading
import time
from types import FrameType
from typing import Any, Dict, Iterator, Optional

SECONDS = 1.0  # per search
TICK = 0.05  # how often a search in progress is looked at
FLAGS = re.ASCII
# installed: our handler is, around a batch of searches; started: when the search in
# progress began (None: no search in progress).
_state: Dict[str, Any] = {"installed": False, "started": None}


class RegexTimeout(Exception):
    def __init__(self, pattern: str, length: int, seconds: float):
        super().__init__(f"regex /{pattern}/ did not finish within {seconds:g} s on a text of "
                         f"{length} characters (a pattern that backtracks without end: "
                         f"simplify it)")


class _Expired(Exception):
    pass


def compile_pattern(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """The pattern as searches use it (re.error when it does not compile)."""
    return re.compile(pattern, FLAGS | flags)


@contextlib.contextmanager
def time_bound() -> Iterator[None]:
    """Searches inside are bounded. A periodic timer looks at the search in progress, so a
    search costs one clock read (arming a timer per search, or installing a handler,
    costs more than searching a short text: 100,000 records would take seconds)."""
    if _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGALRM, _tick)
    _state["installed"] = True
    signal.setitimer(signal.ITIMER_REAL, TICK, TICK)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        _state["installed"] = False
        signal.signal(signal.SIGALRM, old)


def search(pattern: str, text: str, flags: int = 0) -> Optional[re.Match[str]]:
    rx = compile_pattern(pattern, flags)
    if not _state["installed"]:
        if threading.current_thread() is not threading.main_thread():
            return rx.search(text)  # no signals here: unbounded
        with time_bound():
            return search(pattern, text, flags)
    try:
        _state["started"] = time.monotonic()
        return rx.search(text)
    except _Expired:
        raise RegexTimeout(pattern, len(text), SECONDS) from None
    finally:
        _state["started"] = None


def _tick(signum: int, frame: Optional[FrameType]) -> None:
    started = _state["started"]
    if started is not None and time.monotonic() - started > SECONDS:
        raise _Expired
