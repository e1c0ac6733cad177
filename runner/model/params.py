"""A spec's declared parameters (`params:`), set from `--set NAME=VALUE` before rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union


@dataclass(frozen=True)
class Param:
    """A parameter declared under `params:`. Its value is a constant of the rendered
    program: the runtime sets it from `--set NAME=VALUE` with runner/check/params.py's
    `apply`, before rendering, so the compiler folds it into the code."""

    name: str
    scalar: str  # a runner/model/types.py SCALARS name, or "char[N]" for a string
    value: Union[int, str]  # checked to fit `scalar` (a string: at most N - 1 bytes)
    default: Union[int, str]
    origin: str
    size: int = 0  # char[N]: N; 0 for an integer

    @property
    def text(self) -> Optional[bytes]:
        """A string parameter's bytes padded with NULs to N (for its C literal); None for
        an integer."""
        return str(self.value).encode().ljust(self.size, b"\0") if self.size else None
