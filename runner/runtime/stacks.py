"""Stack ids in aggregation keys -> frames: each dump reads every stack it shows once
from its stack map and symbolizes it (kernel frames from /proc/kallsyms, user frames
through the process's mappings, runner/symbols).

User frames are resolved with the pid kept beside a ustack in the key (STACK_PID). The
process's mappings are read when the program first takes a ustack in it and sends its pid
(the ring Spec.stack_pids), or else the first time a dump meets its pid; a process that
exited before either is shown as addresses (hex), never dropped. A negative id is no stack: -EFAULT
(a kernel thread has no user stack) is an empty stack; any other is a capture the kernel
counted as lost (a full map, a hash collision), shown as the one frame LOST.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from runner.model.aggregates import Entry, Key
from runner.model.spec import Aggregation, Spec, Struct
from runner.model.stacks import STACK_PID, StackMap
from runner.output.stacks import FieldStack
from runner.runtime.decode import RecordDecoder
from runner.symbols.frames import Frame
from runner.symbols.kernel import KernelSymbols
from runner.symbols.user import UserSymbols

EFAULT = 14
EVENT_CACHE = 65536  # events' stacks kept as shown, by (map, id, pid); then it starts again
LOST = Frame(0, "[lost stack]", marker=True)
Frames = Tuple[Frame, ...]
Parts = Tuple[Any, ...]  # a key's parts: Frames for a stack field, else its value


class StackReader:
    """The frames of the stacks a dump shows. `load` reads them; `frames` answers."""

    def __init__(self, spec: Spec, kernel: Optional[KernelSymbols] = None,
                 user: Optional[UserSymbols] = None):
        self.maps = {m.depth: m for m in spec.stacks}
        self.kernel = kernel or KernelSymbols()
        self.user = user or UserSymbols()
        self._addresses: Dict[Tuple[str, int], Optional[List[int]]] = {}
        # A dump's symbolized stacks: keys share stacks (one kstack under many comms)
        self._frames: Dict[Tuple[str, int, int], Frames] = {}

    def on_pids(self, data: bytes, size: int, count: int) -> None:
        """Ring records of pids whose user stacks were just taken: read each one's mappings
        now, while it lives (a record: an 8-byte header, then the u32 pid, padded)."""
        stride = len(data) // count
        for off in range(8, 8 + count * stride, stride):
            self.user.capture(int.from_bytes(data[off:off + 4], sys.byteorder))

    def load(self, maps: Any, agg: Aggregation, keys: Iterable[Key]) -> None:
        """Read each stack the keys name, once (a dump's keys share many stacks)."""
        self._addresses, self._frames = {}, {}
        for key in keys:
            for i, k in enumerate(agg.keys):
                sid = key[i]
                if k.type.is_stack and isinstance(sid, int) and sid >= 0:
                    m = self.maps[k.type.depth]
                    if (m.name, sid) not in self._addresses:
                        self._addresses[(m.name, sid)] = maps.stack(m, sid)

    def frames(self, agg: Aggregation, key: Key, index: int) -> Frames:
        """Key part `index` (a stack field) as frames, innermost first."""
        k = agg.keys[index]
        sid = key[index]
        assert isinstance(sid, int)
        if sid < 0:
            return () if sid == -EFAULT else (LOST,)
        name = self.maps[k.type.depth].name
        pid = key[len(agg.keys)] if agg.stack_pid and k.type.base == "ustack" else -1
        assert isinstance(pid, int)
        found = self._frames.get((name, sid, pid))
        if found is None:
            found = self._frames[(name, sid, pid)] = self._symbolize(name, sid, pid)
        return found

    def event_frames(self, maps: Any, m: StackMap, sid: int, pid: int) -> Frames:
        """Stack `sid` of map `m` in an event: kernel frames (pid -1), or user frames of
        `pid`. An id keeps its stack for the whole run (the map is never cleared, and
        without BPF_F_REUSE_STACKID the kernel never replaces a stack): with_stacks keeps
        what it showed, so a repeated stack costs no lookup."""
        if sid < 0:
            return () if sid == -EFAULT else (LOST,)
        addresses = maps.stack(m, sid)
        if addresses is None:
            return (LOST,)
        if pid < 0:
            return tuple(self.kernel.frame(a) for a in addresses)
        return tuple(self.user.frame(pid, a) for a in addresses)

    def _symbolize(self, name: str, sid: int, pid: int) -> Frames:
        """Stack `sid` of map `name`: kernel frames (pid -1), or user frames of `pid`."""
        addresses = self._addresses.get((name, sid))
        if addresses is None:  # no longer in the map: nothing to show but the loss
            return (LOST,)
        if pid < 0:
            return tuple(self.kernel.frame(a) for a in addresses)
        return tuple(self.user.frame(pid, a) for a in addresses)


def resolved(reader: StackReader, maps: Any, agg: Aggregation, entries: List[Entry]
             ) -> List[Tuple[Parts, Entry]]:
    """Each entry with its key parts: stacks as frames, the others as they are."""
    reader.load(maps, agg, (e.key for e in entries))
    out = []
    for e in entries:
        parts = tuple(reader.frames(agg, e.key, i) if k.type.is_stack else e.key[i]
                      for i, k in enumerate(agg.keys))
        out.append((parts, e))
    return out


def with_stacks(dec: RecordDecoder, reader: StackReader, maps: Any) -> RecordDecoder:
    """dec, whose records come out with their stack fields as frames (FieldStack: a list
    for JSON, bpftrace's lines in a format) and without the hidden pid of a ustack."""
    fields = [(f.name, reader.maps[f.type.depth], f.type.base == "ustack")
              for f in dec.struct.layout.fields if f.type.is_stack]
    if not fields:
        return dec
    return dataclasses.replace(dec, fields=_resolving(dec.fields, fields, reader, maps))


def _resolving(decoded: Callable[[Any], Dict[str, Any]],
               stacks: List[Tuple[str, StackMap, bool]], reader: StackReader, maps: Any
               ) -> Callable[[Any], Dict[str, Any]]:
    shown: Dict[Tuple[str, int, int], FieldStack] = {}  # the texts of the stacks seen

    def fields(record: Any) -> Dict[str, Any]:
        out = decoded(record)
        pid = out.pop(STACK_PID, -1)
        for name, m, user in stacks:
            key = (m.name, out[name], pid if user else -1)
            found = shown.get(key)
            if found is None:
                frames = reader.event_frames(maps, m, key[1], key[2])
                found = FieldStack(f.text for f in frames)
                if frames != (LOST,):  # a stack not (yet) readable is read again next time
                    if len(shown) >= EVENT_CACHE:
                        shown.clear()
                    shown[key] = found
            out[name] = found
        return out

    return fields


def has_stacks(struct: Struct) -> bool:
    return any(f.type.is_stack for f in struct.layout.fields)
