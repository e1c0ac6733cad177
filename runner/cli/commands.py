"""`validate` and `render`: the stages up to code generation, no kernel needed."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from runner.errors import SpecError
from runner.model.spec import Spec
from runner.output.stdout import OutputUnwritable
from runner.pipeline import check, compile_spec
from runner.support.cache_dir import Refused, open_output_dir, replace_file


def validate(paths: List[str]) -> int:
    errors: List[SpecError] = []
    for path in paths:
        try:
            spec = check(path)
        except SpecError as e:
            errors.append(e)
            continue
        print(f"{path}: ok ({_summary(spec)})")
        for line in trigger_lines(spec):
            print("  " + line)
    if errors:
        raise SpecError([d for e in errors for d in e.diagnostics])
    return 0


def trigger_lines(spec: Spec) -> List[str]:
    """What `ebpf-run test` would run, and as whom: each case's trigger is a command run
    by a root process, so validate shows them before anyone runs them."""
    lines = []
    for case in spec.tests:
        who = "root" if case.trigger.user == 0 else f"uid {case.trigger.user}"
        lines.append(f"test {case.name} runs as {who}: {shlex.join(case.trigger.argv)}")
    return lines


def _summary(spec: Spec) -> str:
    parts = [f"{len(spec.probes)} probe{'s' if len(spec.probes) != 1 else ''}"]
    if spec.programs:
        parts.append(f"{len(spec.programs)} programs")
    user_maps = [m for m in spec.maps]
    if user_maps:
        parts.append(f"{len(user_maps)} map{'s' if len(user_maps) != 1 else ''}")
    return ", ".join(parts)


def layout_table(spec: Spec) -> str:
    rows = [("struct", "field", "type", "offset", "size")]
    for s in spec.structs:
        for m in s.members:
            rows.append((s.name, m.name + (" (padding)" if m.padding else ""), str(m.type),
                         str(m.offset), str(m.size)))
        rows.append((s.name, "(total)", "", "", str(s.layout.size)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def render(path: str, out: Optional[str], arch: Optional[str],
           params: Tuple[Tuple[str, str], ...] = ()) -> int:
    compiled = compile_spec(path, arch, params)
    stem = Path(path).stem
    if out:
        d = Path(out)
        c_file, py_file = d / f"{stem}.c", d / f"{stem.replace('-', '_')}.py"
        dir_fd = _open_out(d, c_file)
        try:
            _write(dir_fd, c_file, compiled.rendered.c)
            _write(dir_fd, py_file, compiled.rendered.python)
        finally:
            os.close(dir_fd)
        print(f"wrote {c_file} and {py_file}")
        return 0
    w = sys.stdout.write
    w(f"=== {stem}.c (BPF C for BCC) ===\n{compiled.rendered.c}\n")
    w(f"=== {stem.replace('-', '_')}.py (ctypes view) ===\n{compiled.rendered.python}\n")
    w(f"=== layout ===\n{layout_table(compiled.spec)}\n")
    tables = tail_call_tables(compiled.spec)
    if tables:
        w(f"=== tail-call tables ({compiled.spec.arch}) ===\n{tables}\n")
    return 0


def _open_out(directory: Path, first: Path) -> int:
    """The output directory, open: walked from / as the cache location is (support/
    cache_dir.py), so neither a link someone planted on the way (/tmp/out -> /etc) nor a
    directory another user can write decides where root writes."""
    try:
        return open_output_dir(str(directory))
    except Refused as e:
        raise OutputUnwritable(f"cannot write {first}: {e}") from None
    except OSError as e:  # nothing expected (an fstat...): still a message, no traceback
        raise OutputUnwritable(f"cannot write {first}: {e.strerror or e}") from None


def _write(dir_fd: int, file: Path, text: str) -> None:
    """Write `file` in the open directory as a new file renamed over the name: whatever the
    name held (a link someone planted to /etc/passwd, a hard link, a FIFO) is replaced,
    never written through, and a reader sees the old file or the whole new one."""
    try:
        replace_file(dir_fd, file.name, text.encode())
    except OSError as e:
        # The errno text alone ("Not a directory") does not say which path: name it.
        raise OutputUnwritable(f"cannot write {file}: {e.strerror or e}"
                               + (f" ({e.filename})" if e.filename and
                                  str(e.filename) != str(file) else "")) from None


def tail_call_tables(spec: Spec) -> str:
    """What each prog_array will hold once filled, for review."""
    lines = []
    for probe in spec.probes:
        for t in probe.tables:
            default = f"{t.default} in all {t.map.max_entries} slots, then" if t.default else \
                "empty slots, then"
            lines.append(f"{t.map.name} (used by probe {probe.name}): {default}")
            lines += [f"  [{slot}] {label} -> {prog}" if label != str(slot) else
                      f"  [{slot}] -> {prog}" for slot, prog, label in t.entries]
    return "\n".join(lines)
