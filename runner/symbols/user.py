"""User addresses to frames: a process's mappings, captured while it lives, and each mapped
file's symbols, read once per file (by identity: device, inode, size, mtime).

Capture early: a process that has exited has no /proc/PID/maps, so its frames can only be
resolved from a snapshot taken while it ran. The runtime calls `capture(pid)` as soon as
it sees a pid (see docs/spec.md, "Stacks"); `frame(pid, address)` then works after the
process is gone. A pid never captured, or an address in no mapping or no function, gives a
frame that prints as its address.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Optional

from runner.symbols.elf import DEBUG_ROOT, ElfSymbols, read_elf
from runner.symbols.frames import Frame
from runner.symbols.maps import PROC, FileKey, Mapping, open_mapped, read_maps

MAX_PROCESSES = 4096  # snapshots kept; the oldest are forgotten first
MAX_FILES = 1024  # files whose symbols are kept
# Files held open, not read yet: a capture only opens them (reading the symbol tables of a
# big program's files takes seconds, too long for the run's loop); a dump that needs one
# reads it then. Past this many the oldest is closed (its frames then need the file by path).
MAX_PENDING = 256


class _Process:
    def __init__(self, mappings: List[Mapping], files: Dict[int, Optional[FileKey]]):
        self.mappings = mappings  # sorted by start
        self.files = files  # index in mappings -> the file's identity (None: unreadable)


class UserSymbols:
    def __init__(self, proc: Path = PROC, debug_root: Path = DEBUG_ROOT):
        self.proc = proc
        self.debug_root = debug_root
        self._processes: OrderedDict[int, _Process] = OrderedDict()
        self._files: OrderedDict[FileKey, Optional[ElfSymbols]] = OrderedDict()
        self._pending: OrderedDict[FileKey, int] = OrderedDict()  # file -> an fd on it
        self.unresolved = 0  # frames given as addresses (counted for the summary)

    def capture(self, pid: int, refresh: bool = False) -> bool:
        """Snapshot `pid`'s mappings and read the symbols of the files it maps; False when
        the process is gone. Without `refresh`, a pid captured before is kept as it was."""
        if pid in self._processes and not refresh:
            self._processes.move_to_end(pid)
            return True
        mappings = read_maps(pid, self.proc)
        if mappings is None:
            return False
        mappings.sort(key=lambda m: m.start)
        files = {i: self._read_file(pid, m) for i, m in enumerate(mappings)}
        self._processes[pid] = _Process(mappings, files)
        while len(self._processes) > MAX_PROCESSES:
            self._processes.popitem(last=False)
        return True

    def _read_file(self, pid: int, m: Mapping) -> Optional[FileKey]:
        opened = open_mapped(pid, m, self.proc)
        if opened is None:
            return None
        fd, key = opened
        if key in self._files or key in self._pending:
            os.close(fd)
        else:
            self._pending[key] = fd
            while len(self._pending) > MAX_PENDING:
                os.close(self._pending.popitem(last=False)[1])
        return key

    def _symbols(self, key: FileKey) -> Optional[ElfSymbols]:
        """The file's symbols, read on first use from the fd its capture kept."""
        fd = self._pending.pop(key, None)
        if fd is not None:
            try:
                with os.fdopen(fd, "rb") as f:
                    self._files[key] = read_elf(f, self.debug_root)
            except OSError:
                self._files[key] = None
            while len(self._files) > MAX_FILES:
                self._files.popitem(last=False)
        elif key in self._files:
            self._files.move_to_end(key)
        return self._files.get(key)

    def frame(self, pid: int, address: int) -> Frame:
        found = self._resolve(pid, address)
        if found is None or found.name is None:
            self.unresolved += 1
        return found or Frame(address)

    def _resolve(self, pid: int, address: int) -> Optional[Frame]:
        process = self._processes.get(pid)
        if process is None and self.capture(pid):
            process = self._processes.get(pid)
        if process is None:
            return None
        for i, m in enumerate(process.mappings):
            if m.start <= address < m.end:
                return self._in_mapping(process, i, m, address)
        return None

    def _in_mapping(self, process: _Process, i: int, m: Mapping, address: int) -> Frame:
        module = m.path
        key = process.files.get(i)
        symbols = self._symbols(key) if key is not None else None
        if symbols is None:
            return Frame(address, module=module)
        vaddr = symbols.vaddr_of(m.file_offset(address))
        hit = symbols.lookup(vaddr) if vaddr is not None else None
        if hit is None:
            return Frame(address, module=module)
        return Frame(address, hit[0], hit[1], module)
