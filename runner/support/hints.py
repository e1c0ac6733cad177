"""'Did you mean' suggestions for unknown names."""

from __future__ import annotations

import difflib
from typing import Iterable, Optional


def did_you_mean(word: str, choices: Iterable[str]) -> Optional[str]:
    found = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f"did you mean '{found[0]}'?" if found else None


def known(kind: str, choices: Iterable[str]) -> str:
    names = sorted(set(choices))
    return f"known {kind}: {', '.join(names)}" if names else f"no {kind} are declared"
