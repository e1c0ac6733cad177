"""`ebpf-run list [PATTERN] [-v] [--json]`: the probes a spec can name on this machine.

Like `bpftrace -l` / `-lv`: tracepoints (`tracepoint:CATEGORY:NAME`), syscalls
(`syscall:NAME`, with the attach methods that exist for each) and raw tracepoints
(`raw_tracepoint:NAME`), filtered by a shell glob. `-v` adds each record's fields
with their types. The names and fields come from tracefs when it is readable, else
from the shipped table; the latter is said on stderr, so stdout stays parseable.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, TextIO, Tuple

from runner.support.syscalls import Syscall
from runner.support.tracefs import (
    ArrayType,
    DataLocType,
    Field,
    Format,
    IntType,
    OpaqueType,
    PointerType,
)
from runner.support.tracepoints import Catalog, open_catalog


def add_parser(sub: Any) -> None:
    """Registers `list` on the CLI's subparsers (`sub` from add_subparsers())."""
    p = sub.add_parser("list", help="list the probes a spec can name on this machine")
    p.add_argument("pattern", nargs="?", default="*", metavar="PATTERN",
                   help="a glob on the probe, e.g. 'tracepoint:sched:*' or 'syscall:open*'")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show each probe's fields and their types")
    p.add_argument("--json", action="store_true", help="print JSON lines, one probe each")


def main(args: argparse.Namespace) -> int:
    return list_probes(args.pattern, args.verbose, args.json)


@dataclass(frozen=True)
class Attach:
    method: str  # kprobe | tracepoint | raw_tracepoint: the spec's attach keys
    target: str
    filter_nr: Optional[int] = None  # raw sys_enter: only this syscall number
    unsure: bool = False  # kprobes from the shipped table: whether they exist is unknown


@dataclass(frozen=True)
class Probe:
    kind: str  # tracepoint | syscall | raw_tracepoint
    name: str
    attach: Tuple[Attach, ...] = ()  # syscalls: how it can attach here, in the order tried
    number: Optional[int] = None  # syscalls: the number on this architecture
    format: Optional[Format] = None  # its fields, when listed verbosely

    @property
    def full_name(self) -> str:
        return f"{self.kind}:{self.name}"


def list_probes(pattern: str = "*", verbose: bool = False, json_lines: bool = False,
                catalog: Optional[Catalog] = None, out: Optional[TextIO] = None,
                err: Optional[TextIO] = None) -> int:
    """Prints the matching probes; 0 when some matched, 1 when none did.

    The streams are looked up at call time: the CLI swaps sys.stdout for a private copy
    of the real stdout (runner/output/stdout.py), and a default bound at import would
    write to the descriptor it points at stderr instead."""
    out = out or sys.stdout
    err = err or sys.stderr
    catalog = catalog or open_catalog()
    if not catalog.live:
        print(f"ebpf-run: list: using {catalog.source}", file=err)
    found = 0
    for probe in probes(catalog, pattern, verbose):
        found += 1
        out.write(json.dumps(to_json(probe)) + "\n" if json_lines else to_text(probe, verbose))
    if not found:
        print(f"ebpf-run: list: no probe matches {pattern!r}", file=err)
    return 0 if found else 1


def probes(catalog: Catalog, pattern: str, verbose: bool) -> Iterator[Probe]:
    """The matching probes, tracepoints first, each kind sorted by name."""
    def wanted(kind: str, name: str) -> bool:
        # A pattern without a kind ("openat", "sched:*") matches the name alone.
        return fnmatch.fnmatchcase(f"{kind}:{name}", pattern) or fnmatch.fnmatchcase(name, pattern)

    for name in catalog.names:
        if wanted("tracepoint", name):
            yield Probe("tracepoint", name, format=catalog.format(name) if verbose else None)
    known = catalog.syscalls()
    for name in sorted(known):
        sc = known[name]
        if sc.entry is not None and wanted("syscall", name):
            fmt = catalog.format(sc.enter_tracepoint or "") if verbose else None
            yield Probe("syscall", name, syscall_attach(catalog, sc), sc.number, fmt)
    for name in catalog.raw_names:
        if wanted("raw_tracepoint", name):
            yield Probe("raw_tracepoint", name)


def syscall_attach(catalog: Catalog, sc: Syscall) -> Tuple[Attach, ...]:
    """The methods a `syscall:` probe can use here, in the order the runner tries them."""
    out = []
    fn = sc.kprobe_function(catalog.arch)
    if fn and catalog.kprobes is not False:  # None: no tracefs to tell
        out.append(Attach("kprobe", fn, unsure=catalog.kprobes is None))
    if sc.enter_tracepoint and catalog.has(sc.enter_tracepoint):
        out.append(Attach("tracepoint", sc.enter_tracepoint))
    if sc.number is not None and "sys_enter" in catalog.raw_names:
        out.append(Attach("raw_tracepoint", "sys_enter", sc.number))
    return tuple(out)


def to_text(probe: Probe, verbose: bool) -> str:
    lines = [probe.full_name]
    if verbose and probe.kind == "syscall":
        lines.append("    attach: " + ", ".join(_attach_text(a) for a in probe.attach))
    if verbose and probe.format is not None:
        lines += [f"    {f.decl}" for f in _fields(probe)]
    return "\n".join(lines) + "\n"


def _attach_text(a: Attach) -> str:
    nr = f" (nr {a.filter_nr})" if a.filter_nr is not None else ""
    unsure = " (if the kernel has kprobes)" if a.unsure else ""
    return f"{a.method} {a.target}{nr}{unsure}"


def to_json(probe: Probe) -> Dict[str, Any]:
    out: Dict[str, Any] = {"type": "probe", "probe": probe.full_name, "kind": probe.kind,
                           "name": probe.name}
    if probe.kind == "syscall":
        out["number"] = probe.number
        out["attach"] = [{"method": a.method, "target": a.target, "filter_nr": a.filter_nr,
                          "unsure": a.unsure} for a in probe.attach]
    if probe.format is not None:
        out["fields"] = [field_json(f) for f in _fields(probe)]
    return out


def _fields(probe: Probe) -> Tuple[Field, ...]:
    # A syscall's fields are its named arguments, the same whichever method attached.
    assert probe.format is not None
    return probe.format.syscall_args if probe.kind == "syscall" else probe.format.fields


def field_json(f: Field) -> Dict[str, Any]:
    out: Dict[str, Any] = {"name": f.name, "type": f.ctype, "offset": f.offset, "size": f.size}
    t = f.type
    if isinstance(t, IntType):
        out.update(kind="integer", value_size=t.size, signed=t.signed)
    elif isinstance(t, ArrayType):
        out.update(kind="array", element=t.elem.ctype, element_size=t.elem.size,
                   count=t.count, signed=t.elem.signed)
    elif isinstance(t, DataLocType):
        out.update(kind="data_loc", element=t.elem, relative=t.relative,
                   string=t.is_string)
    elif isinstance(t, PointerType):
        out.update(kind="pointer", user=t.user)
    else:
        assert isinstance(t, OpaqueType)
        out.update(kind="opaque")
    return out

