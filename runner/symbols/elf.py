"""One ELF file's function symbols and load segments, read with pyelftools.

A frame's address becomes a file offset through the process's mapping, then a virtual
address of the file through its PT_LOAD segments (so a PIE or a shared library at any base
resolves), then the function whose [start, start + size) holds it. Symbols come from the
separate debug file named by the build-id under /usr/lib/debug/.build-id/ when one is
installed (Debian's -dbg packages), else the file's own .symtab, else its .dynsym.

Any file a process maps is read, so any file may be hostile: sizes and counts are bounded,
every parse failure of pyelftools' leaves the file without symbols (its frames print as
addresses), and a debug file is used only if it is a regular file owned by root.
"""

from __future__ import annotations

import bisect
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Tuple

DEBUG_ROOT = Path("/usr/lib/debug/.build-id")
MAX_SYMBOLS = 2_000_000  # more than any real binary (a browser has ~500k)
MAX_NAME = 512  # longer names are cut: C++ templates can run to kilobytes
_FUNCTION_TYPES = (2, 10)  # STT_FUNC, STT_GNU_IFUNC


@dataclass(frozen=True)
class Segment:
    offset: int  # p_offset
    vaddr: int  # p_vaddr
    size: int  # p_filesz


class ElfSymbols:
    """Sorted function symbols of one file, and its executable segments."""

    def __init__(self, symbols: List[Tuple[int, int, str]], segments: List[Segment],
                 build_id: Optional[str]):
        symbols.sort()  # by start, then size (no size first), then name
        self._starts = [s for s, _, _ in symbols]
        self._sizes = [n for _, n, _ in symbols]
        self._names = [name for _, _, name in symbols]
        self.segments = tuple(segments)
        self.build_id = build_id

    def __len__(self) -> int:
        return len(self._starts)

    def vaddr_of(self, file_offset: int) -> Optional[int]:
        """The file's virtual address of a byte at `file_offset`, from its PT_LOAD segments."""
        for seg in self.segments:
            if seg.offset <= file_offset < seg.offset + seg.size:
                return file_offset - seg.offset + seg.vaddr
        return None

    def lookup(self, vaddr: int) -> Optional[Tuple[str, int]]:
        """(function, offset into it), or None when no function holds `vaddr`. Aliases
        (one start, several names) give the first name in byte order, as BCC and so
        bpftrace do (libc's write is `__GI___write`)."""
        i = bisect.bisect_right(self._starts, vaddr) - 1
        if i < 0:
            return None
        start = self._starts[i]
        for k in range(bisect.bisect_left(self._starts, start), i + 1):
            # A symbol without a size (hand-written assembly) runs to the next one.
            if not self._sizes[k] or vaddr < start + self._sizes[k]:
                return self._names[k], vaddr - start
        return None


def read_elf(f: BinaryIO, debug_root: Path = DEBUG_ROOT) -> Optional[ElfSymbols]:
    """The symbols of the ELF file open as `f`, or None if it is not one we can read."""
    try:
        from elftools.elf.elffile import ELFFile

        elf = ELFFile(f)
        segments = _segments(elf)
        build_id = _build_id(elf)
        symbols = None
        if build_id is not None:
            symbols = _debug_symbols(build_id, debug_root)
        if symbols is None:
            symbols = _symbols(elf)
    except Exception:  # pyelftools on a stranger's file: any failure means "no symbols"
        return None
    return ElfSymbols(symbols, segments, build_id)


def _segments(elf: object) -> List[Segment]:
    out = []
    for seg in elf.iter_segments():  # type: ignore[attr-defined]
        h = seg.header
        if h.p_type == "PT_LOAD" and h.p_flags & 1:  # PF_X: code
            out.append(Segment(int(h.p_offset), int(h.p_vaddr), int(h.p_filesz)))
    return out


def _build_id(elf: object) -> Optional[str]:
    for sec in elf.iter_sections():  # type: ignore[attr-defined]
        if sec.header.sh_type != "SHT_NOTE":
            continue
        for note in sec.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID":
                desc = str(note["n_desc"])
                return desc if all(c in "0123456789abcdef" for c in desc) else None
    return None


def _symbols(elf: object) -> List[Tuple[int, int, str]]:
    """Function symbols of .symtab, else of .dynsym."""
    tables: Dict[str, object] = {}
    for sec in elf.iter_sections():  # type: ignore[attr-defined]
        if sec.header.sh_type in ("SHT_SYMTAB", "SHT_DYNSYM"):
            tables.setdefault(sec.header.sh_type, sec)
    table = tables.get("SHT_SYMTAB") or tables.get("SHT_DYNSYM")
    if table is None:
        return []
    if table.num_symbols() > MAX_SYMBOLS:  # type: ignore[attr-defined]
        return []
    # The table is unpacked in one go: pyelftools' iter_symbols builds a container per
    # symbol, 20x slower, and a dump waits for every file its stacks name (libc alone has
    # thousands of symbols, a browser 500k).
    little = elf.little_endian  # type: ignore[attr-defined]
    if elf.elfclass == 64:  # type: ignore[attr-defined]
        entry, order = "IBBHQQ", (0, 4, 5, 1)  # name, value, size, info
    else:
        entry, order = "IIIBBH", (0, 1, 2, 3)
    layout = struct.Struct(("<" if little else ">") + entry)
    data = table.data()  # type: ignore[attr-defined]
    names = elf.get_section(table["sh_link"]).data()  # type: ignore[attr-defined,index]
    out = []
    for fields in layout.iter_unpack(data[:len(data) - len(data) % layout.size]):
        name_at, value, size, info = (fields[i] for i in order)
        if info & 0xF in _FUNCTION_TYPES and value and name_at:
            end = names.find(b"\0", name_at)
            name = names[name_at:end if end >= 0 else len(names)][:MAX_NAME]
            if name:
                out.append((value, size, name.decode("utf-8", "replace")))
    return out


def _debug_symbols(build_id: str, debug_root: Path) -> Optional[List[Tuple[int, int, str]]]:
    """The function symbols of the installed debug file for `build_id`, if a trusted one."""
    if len(build_id) < 3:
        return None
    path = debug_root / build_id[:2] / f"{build_id[2:]}.debug"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != 0 or st.st_mode & stat.S_IWOTH:
            return None
        from elftools.elf.elffile import ELFFile

        symbols = _symbols(ELFFile(f))
    return symbols or None
