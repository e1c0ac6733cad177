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

import sys
from typing import Any, Dict, Iterable, List, Optional, Tuple

from runner.model.aggregates import Entry, Key
from runner.model.spec import Aggregation, Spec
from runner.symbols.frames import Frame
from runner.symbols.kernel import KernelSymbols
from runner.symbols.user import UserSymbols

EFAULT = 14
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
