"""The Python source of a batch text formatter: one function from a run of ring or perf
buffer records to their text lines (runner/runtime/decode.py batch_formatter runs it).

struct.iter_unpack reads every record and one f-string per record formats it, in a list
comprehension: no ctypes object, dict or format_map per event. It gives exactly the text of
`fmt.format_map(er_fields_X(record))`, or None when the struct or the format needs more than
this handles (integers and char arrays, plain field names, simple format specs).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set

INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_SAFE_SPEC = set(string.ascii_letters + string.digits + " <>=^+-#,_.%")


@dataclass(frozen=True)
class Field:
    """One member of the record's struct as the batch reads it."""

    name: str
    offset: int
    size: int
    kind: str  # "text" (a char array), "signed", "unsigned" or "skip"


@dataclass(frozen=True)
class BatchSource:
    source: str  # defines er_batch(buf, _rows, _c, _text)
    layout: str  # the struct module format of one record with its header and padding
    stride: int


def batch_source(fields: Sequence[Field], size: int, fmt: str,
                 header: int) -> Optional[BatchSource]:
    """The source of `er_batch` for records of `size` bytes behind `header` bytes (8 for a
    ring record, 12 for a perf sample), each padded to 8."""
    codes, names, pos = [f"={header}x"], {}, 0
    texts: Set[str] = set()
    for i, f in enumerate(fields):
        var = f"_{i}"
        if f.offset > pos:
            codes.append(f"{f.offset - pos}x")
        if f.kind == "text":
            codes.append(f"{f.size}s")
            names[f.name] = f"(_c.get({var}) or _text({var}))"
            texts.add(f.name)
        elif f.kind in ("signed", "unsigned"):
            code = INT_CODES[f.size]
            codes.append(code if f.kind == "signed" else code.upper())
            names[f.name] = var
        else:
            codes.append(f"{f.size}x")
        pos = f.offset + f.size
    stride = (size + header + 7) & ~7
    codes.append(f"{stride - header - pos}x")
    parts = _format_parts(fmt, names, texts)
    if parts is None:
        return None
    unpacked = ", ".join(f"_{i}" for i, f in enumerate(fields) if f.name in names)
    source = (f"def er_batch(buf, _rows=_layout.iter_unpack, _c=_cache, _text=_text):\n"
              f"    return [{' '.join(parts) or repr('')} for ({unpacked},) in _rows(buf)]\n")
    return BatchSource(source, "".join(codes), stride)


def _format_parts(fmt: str, names: Dict[str, str], texts: Set[str]) -> Optional[List[str]]:
    """The f-string pieces of `fmt`, or None where the format needs format_map."""
    parts = []
    for literal, name, spec, conv in string.Formatter().parse(fmt):
        if literal:
            parts.append("f" + repr(literal.replace("{", "{{").replace("}", "}}")))
        if name is None:
            continue
        if name not in names or not set(spec or "") <= _SAFE_SPEC:
            return None
        if conv and name in texts:  # !r of a Text shows the raw value: leave it to format_map
            return None
        parts.append("f'{" + names[name] + (f"!{conv}" if conv else "")
                     + (f":{spec}" if spec else "") + "}'")
    return parts
