"""When a periodic aggregation dump (`every`) was read, and which interval it closes: a line
over its text and two fields on each of its JSON records (runner/runtime/aggdump.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Dict


@dataclass(frozen=True)
class Stamp:
    """When a periodic dump (`every`) was read, and which interval it closes: the n-th
    interval since the run started (numbers skipped by a late dump are missing; the dump at
    exit closes the partial interval after the last one)."""

    time: datetime  # local, with its UTC offset
    interval: int

    @property
    def header(self) -> str:
        """The line over the dump in text, as BCC's tools print the time of theirs."""
        return f"{self.time:%H:%M:%S} interval {self.interval}"

    @property
    def fields(self) -> Dict[str, Any]:
        """On each JSON record of the dump."""
        return {"time": self.time.isoformat(timespec="milliseconds"),
                "interval": self.interval}


def wall_clock() -> datetime:
    return datetime.now().astimezone()
