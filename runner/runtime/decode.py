"""User-space decoding with the generated ctypes module.

The rendered Python is executed as a module (its import checks every size and
offset against the model); records are then read in place with
`Class.from_address`, which costs about a tenth of BCC's `table.event()`.
Every record's size is checked on arrival.
"""

from __future__ import annotations

import ctypes
import struct as _struct
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

from runner.codegen.batch import Field, batch_source
from runner.errors import KernelError
from runner.model.spec import Spec, Struct
from runner.model.types import TypeRef
from runner.output.escape import as_text, escape, with_texts


def load_types(source: str, spec: Spec) -> types.ModuleType:
    module = types.ModuleType(f"ebpf_run_types_{spec.name.replace('-', '_')}")
    code = compile(source, f"<ebpf-run types for {spec.file}>", "exec")
    exec(code, module.__dict__)  # our own rendered code: classes and a layout check
    return module


@dataclass(frozen=True)
class RecordDecoder:
    """Reads one struct from a buffer address, after checking the record's size."""

    struct: Struct
    cls: Any
    fields: Callable[[Any], Dict[str, Any]]
    size: int
    slack: int  # perf samples are padded up to 8 bytes; ring buffer records are exact

    def __call__(self, addr: int, size: int) -> Dict[str, Any]:
        self.check(size)
        return self.fields(self.cls.from_address(addr))

    def check(self, size: int) -> None:
        if not self.size <= size <= self.size + self.slack:
            raise KernelError(f"a {self.struct.name} record arrived with {size} bytes, expected "
                              f"{self.size}: the program and its user-space view disagree")

    def at(self, buf: bytes, offset: int) -> Dict[str, Any]:
        """The record at buf[offset:] (its size already checked)."""
        return self.fields(self.cls.from_buffer_copy(buf, offset))


def record_decoder(module: types.ModuleType, struct: Struct, padded: bool) -> RecordDecoder:
    return RecordDecoder(struct, getattr(module, struct.name),
                         _texts_of(getattr(module, f"er_fields_{struct.name}"), struct),
                         struct.layout.size, 7 if padded else 0)


def _texts_of(fields: Callable[[Any], Dict[str, Any]],
              struct: Struct) -> Callable[[Any], Dict[str, Any]]:
    """`fields` with its char arrays made safe to format (output.escape.as_text): text
    output shows them escaped, JSON exactly as they are."""
    if any(m.type.is_struct for m in struct.layout.fields):
        return lambda r: with_texts(fields(r))  # type: ignore[no-any-return]
    names = tuple(m.name for m in struct.layout.fields if m.type.is_string)
    if not names:
        return fields

    def with_text(r: Any) -> Dict[str, Any]:
        d = fields(r)
        for name in names:
            d[name] = as_text(d[name])
        return d

    return with_text


def value_decoder(module: types.ModuleType, t: TypeRef) -> Callable[[bytes], Any]:
    """bytes of a map key or value -> a plain Python value."""
    if t.is_struct:
        cls = getattr(module, t.base)
        def one(b: bytes) -> Any:
            return with_texts(getattr(module, f"er_fields_{t.base}")(
                    cls.from_buffer_copy(b)))
        unit = ctypes.sizeof(cls)
    elif t.is_string:
        return lambda b: as_text(b.split(b"\0", 1)[0].decode("utf-8", "replace"))
    else:
        assert t.scalar is not None
        sc = t.scalar
        one = lambda b: int.from_bytes(b, sys.byteorder, signed=sc.signed)  # noqa: E731
        unit = sc.size
    if t.count is None:
        return one
    return lambda b: [one(b[i * unit:(i + 1) * unit]) for i in range(t.count or 0)]


# -- text lines for a whole batch of ring buffer records -----------------------------------

BatchFormatter = Callable[[bytes], List[str]]


def batch_formatter(module: types.ModuleType, struct: Struct, fmt: str,
                    header: int = 8) -> Optional[BatchFormatter]:
    """A function from a run of records (each behind `header` bytes: 8 for a ring record,
    12 for a perf sample, and padded to 8) to their text lines, generated once per channel
    by runner/codegen/batch.py; None when the struct or the format needs more than it
    handles (the caller then decodes record by record)."""
    cls = getattr(module, struct.name)
    built = batch_source(_batch_fields(cls), ctypes.sizeof(cls), fmt, header)
    if built is None:
        return None
    layout = _struct.Struct(built.layout)
    assert layout.size == built.stride
    cache: Dict[bytes, str] = {}

    def text_of(raw: bytes) -> str:
        """A char array up to the first NUL, as ctypes reads it, escaped as
        output.escape.Text formats it: the batch gives the text of the record-by-record
        path."""
        if len(cache) > 4096:
            cache.clear()
        value = cache[raw] = escape(raw.split(b"\0", 1)[0].decode("utf-8", "replace"))
        return value

    scope: Dict[str, Any] = {"_layout": layout, "_cache": cache, "_text": text_of}
    exec(compile(built.source, f"<ebpf-run text of {struct.name}>", "exec"), scope)
    return scope["er_batch"]  # type: ignore[no-any-return]


def _batch_fields(cls: Any) -> List[Field]:
    """The generated class's members as the batch source reads them."""
    out = []
    for name, ctype in cls._fields_:
        field = getattr(cls, name)
        if issubclass(ctype, ctypes.Array) and ctype._type_ is ctypes.c_char:
            kind = "text"
        elif issubclass(ctype, ctypes._SimpleCData) and ctype._type_ in "bBhHiIlLqQ":
            kind = "signed" if ctype._type_.islower() else "unsigned"
        else:
            kind = "skip"
        out.append(Field(name, field.offset, field.size, kind))
    return out
