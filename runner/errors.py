"""One exception hierarchy for ebpf-run; the CLI maps each class to an exit code.

Spec errors carry a location in the YAML (1-based line and column) and are
collected, so a user sees every problem of a spec at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence


@dataclass(frozen=True)
class Location:
    """A place in a spec file. Line and column are 1-based, as editors show them."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{shown_name(self.file)}:{self.line}:{self.col}"


def shown_name(name: str) -> str:
    """A file or spec name as a message shows it: whoever named the file chose it, so what
    a terminal would obey (control characters, bidi overrides, undecodable bytes) is
    written as an escape."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") for c in name)


@dataclass(frozen=True)
class Diagnostic:
    location: Location
    message: str
    hint: Optional[str] = None
    source_line: Optional[str] = None

    def render(self) -> str:
        """`FILE:LINE:COL: error: MESSAGE`, the source line with a caret, then the hint."""
        out = [f"{self.location}: error: {self.message}"]
        if self.source_line is not None:
            out.append("    " + self.source_line.rstrip("\n"))
            out.append("    " + " " * (self.location.col - 1) + "^")
        if self.hint:
            out.append(f"    hint: {self.hint}")
        return "\n".join(out)


class EbpfRunError(Exception):
    """Base of every error ebpf-run reports without a traceback."""

    exit_code = 3


class SpecError(EbpfRunError):
    """The spec is wrong: bad YAML, schema or meaning. Exit 1."""

    exit_code = 1

    def __init__(self, diagnostics: Sequence[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("\n".join(d.render() for d in self.diagnostics))


class UsageError(EbpfRunError):
    """The command line is wrong. Exit 2."""

    exit_code = 2


class EnvironmentProblem(EbpfRunError):
    """Something the machine lacks (BCC, root, tracefs, headers). Says how to fix it. Exit 3."""

    exit_code = 3


class KernelError(EbpfRunError):
    """The kernel refused: compile, load or attach failed. Exit 3."""

    exit_code = 3


class OutputError(EbpfRunError):
    """A spec's format failed on a real record (the checker tries formats on sample values,
    which cannot cover everything). Exit 1: the spec needs fixing."""

    exit_code = 1


def format_error(e: EbpfRunError) -> str:
    """How the command line prints an error: a spec's diagnostics and their count, else
    one `ebpf-run: error:` message."""
    text = str(e)
    if isinstance(e, SpecError):
        n = len(e.diagnostics)
        return f"{text}\n{n} error{'s' if n != 1 else ''}"
    return f"ebpf-run: error: {text}"
