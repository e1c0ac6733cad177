"""Stacks as people read them: bpftrace's dump of `@[kstack, ustack, comm]` (one frame a
line, innermost first), lists of frames for JSON, and folded lines
(`comm;outer;...;inner count`, what flamegraph.pl, inferno and speedscope read)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterable, List, Sequence, Tuple

from runner.kinds.decoders.text import safe_text
from runner.symbols.frames import Frame

INDENT = "    "  # bpftrace's frame indent in a map's key
EVENT_INDENT = 8 * " "  # and in printf's "%s" of a stack


@dataclass(frozen=True)
class Sample:
    """One aggregated stack: its key parts (innermost frame first) and its count."""

    kernel: Tuple[Frame, ...]
    user: Tuple[Frame, ...]
    comm: str
    count: int


def frame_lines(frames: Sequence[Frame]) -> str:
    """A stack as bpftrace prints it inside a map key: a newline, then one indented frame
    a line, innermost first; nothing for an empty stack. Names are escaped for the
    terminal: they come from any file a process maps."""
    return "".join(f"\n{INDENT}{safe_text(f.text)}" for f in frames) + ("\n" if frames else "")


class FieldStack(List[str]):
    """A stack field of an event: its frames' texts, innermost first. JSON writes it as the
    list it is; a format (`{kstack}`) writes it as bpftrace's printf writes `%s` of a
    kstack: a newline, then one frame a line indented by 8 spaces; nothing when empty."""

    def __format__(self, spec: str) -> str:
        text = "".join(f"\n{EVENT_INDENT}{safe_text(t)}" for t in self) + ("\n" if self else "")
        return format(text, spec)

    def __str__(self) -> str:
        return self.__format__("")


def as_json(frames: Sequence[Frame]) -> List[str]:
    return [f.text for f in frames]


def folded(samples: Iterable[Sample]) -> List[str]:
    """One folded line per distinct path, outermost frame first: the command, then the user
    frames, then the kernel frames (marked `_[k]`, as BCC's profile -f does, so flame graph
    tools colour them); identical paths add up. Sorted, so the output is deterministic."""
    paths: Dict[str, int] = Counter()
    for s in samples:
        names = [_folded_name(s.comm)]
        names += [_folded_name(f.name or f.text) for f in reversed(s.user)]
        names += [_folded_name(f.name or f.text) + "_[k]"
                  for f in reversed(s.kernel)]
        paths[";".join(names)] += s.count
    return [f"{path} {count}" for path, count in sorted(paths.items())]


def _folded_name(name: str) -> str:
    """A frame name that cannot break the line's syntax: no `;`, no line break, no control
    character (names come from any file a process maps)."""
    return "".join("?" if (c == ";" or ord(c) < 0x20 or ord(c) == 0x7F) else c
                   for c in name) or "?"


def key_text(parts: Sequence[object]) -> str:
    """`[part, part]` as bpftrace writes a key holding stacks: a stack (a tuple of frames)
    one frame a line, an empty one as nothing; every text escaped for the terminal (frame
    names come from any file a process maps)."""
    shown = [frame_lines(p) if isinstance(p, tuple) else safe_text(str(p)) for p in parts]
    return f"[{', '.join(shown)}]"
