"""The checked `tests:` section: each case's trigger, run options and expectations.

Made by runner/check/tests.py and read by runner/testing, which runs the cases. Values in
expectations stay as written (numbers, text) except for the two kinds of reference: a
value captured from the trigger's output (`"{pid}"`) and another field of the same record
(`{field: start}`), which are resolved only when the records are matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

Scalar = Union[int, float, str, bool, None]
# Kernel features a case may require; runner/testing/requirements.py says how each is found.
FEATURES = ("kprobes", "btf")


@dataclass(frozen=True)
class Capture:
    """`"{name}"`: the value captured from the trigger's stdout (an int when it reads as one)."""

    name: str


@dataclass(frozen=True)
class Template:
    """Text with captures inside it: `"pid {pid} ran"`; always compared as text."""

    text: str  # str.format text; the names are captures
    names: Tuple[str, ...]


@dataclass(frozen=True)
class FieldRef:
    """`{field: start}`: the value of another field of the same record."""

    path: Tuple[str, ...]


Operand = Union[Scalar, Capture, Template, FieldRef]


@dataclass(frozen=True)
class Condition:
    """One test on one value: `op` is eq, ne, lt, le, gt, ge, regex or one_of."""

    op: str
    operand: Union[Operand, Tuple[Operand, ...]]  # a tuple only for one_of


@dataclass(frozen=True)
class FieldMatch:
    path: Tuple[str, ...]  # ("pid",) or ("key", "comm") for a struct key of a map entry
    conditions: Tuple[Condition, ...]


@dataclass(frozen=True)
class Count:
    """How many records must match: op is exactly, at_least or at_most."""

    op: str
    n: int

    def holds(self, seen: int) -> bool:
        if self.op == "exactly":
            return seen == self.n
        if self.op == "at_least":
            return seen >= self.n
        return seen <= self.n

    def monotone(self) -> bool:
        """True when more records can only keep it true: met once, met for good."""
        return self.op == "at_least"

    def describe(self) -> str:
        if self.op == "exactly":
            return "no" if self.n == 0 else f"exactly {self.n}"
        return f"{self.op.replace('_', ' ')} {self.n}"


@dataclass(frozen=True)
class Expectation:
    """kind: event (target: the channel), message (its text is the first condition), map
    (target: the map; matched against its last dump's entries), attach (target: the probe;
    its attach record) or lost (count: how many the summary says were lost)."""

    kind: str
    target: str
    where: Tuple[FieldMatch, ...]
    count: Count
    origin: str  # "tests.pid.expect[0] (line 30)" for messages


@dataclass(frozen=True)
class Trigger:
    argv: Tuple[str, ...]
    user: Optional[int]  # run as this uid (and its group); None: as ebpf-run's user
    timeout: float
    captures: Tuple[Tuple[str, str], ...]  # (name, regex with one group) on the stdout


@dataclass(frozen=True)
class RunOptions:
    """What `ebpf-run SPEC` is given for the case."""

    count: Optional[int] = None
    duration: Optional[float] = None
    settle: float = 0.5  # seconds the run goes on after the trigger, for late records
    params: Tuple[Tuple[str, str], ...] = ()  # --set NAME=VALUE, once specs have params


@dataclass(frozen=True)
class TestCase:
    name: str
    origin: str
    trigger: Trigger
    options: RunOptions
    requires: Tuple[str, ...]  # kernel features, see runner/testing/requirements.py
    expect: Tuple[Expectation, ...]
