"""Regex searches with a time bound and ASCII semantics, for captures and `regex` conditions.

The text searched is chosen by whoever the probe watches (a file name, a command line), so
a pattern that backtracks catastrophically on it would spin until Ctrl-C. Python's `re`
checks for signals as it backtracks (that is why Ctrl-C stops it), so an interval timer
whose handler raises ends a search after SECONDS. The third-party `regex` module has a
timeout argument, but it is not a dependency, and a child process per search would cost a
fork per record. The bound needs the main thread (only it receives signals): `ebpf-run
test` matches there; elsewhere the search is unbounded.

ASCII: `\\d` is [0-9] and `\\w` [A-Za-z0-9_], so a capture of Arabic-Indic digits is no number
and a pattern means what it says in the spec.
"""

from __future__ import annotations

import re
import signal
import threading
from types import FrameType
from typing import Optional

SECONDS = 1.0  # per search
FLAGS = re.ASCII


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


def search(pattern: str, text: str, flags: int = 0) -> Optional[re.Match[str]]:
    rx = compile_pattern(pattern, flags)
    if threading.current_thread() is not threading.main_thread():
        return rx.search(text)
    old = signal.signal(signal.SIGALRM, _expire)
    try:
        signal.setitimer(signal.ITIMER_REAL, SECONDS)
        try:
            return rx.search(text)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Expired:
        raise RegexTimeout(pattern, len(text), SECONDS) from None
    finally:
        signal.signal(signal.SIGALRM, old)


def _expire(signum: int, frame: Optional[FrameType]) -> None:
    raise _Expired
