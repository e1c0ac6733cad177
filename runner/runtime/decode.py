"""User-space decoding with the generated ctypes module.

The rendered Python is executed as a module (its import checks every size and
offset against the model); records are then read in place with
`Class.from_address`, which costs about a tenth of BCC's `table.event()`.
Every record's size is checked on arrival.
"""

from __future__ import annotations

import ctypes
import operator
import string
import struct as _struct
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

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


def tuple_decoder(module: types.ModuleType, struct_name: str, names: Sequence[str]
                  ) -> Optional[Callable[[bytes], Tuple[Any, ...]]]:
    """bytes of a struct -> the values of `names` in that order, with one struct.unpack: what
    value_decoder gives field by field (an integer; text up to the first NUL, decoded and
    made safe as as_text does), at a fraction of the cost per key of a dump with a million
    keys. None when a field is neither an integer nor text (value_decoder then)."""
    cls = getattr(module, struct_name)
    codes, at = ["="], 0
    kinds: Dict[str, Tuple[int, bool]] = {}
    for fname, ctype in cls._fields_:
        offset = getattr(cls, fname).offset
        code = _unpack_code(ctype)
        if code is None:
            if fname in names:
                return None
            continue  # e.g. a padding array: skipped like a gap
        codes.append(f"{offset - at}x" if offset > at else "")
        codes.append(code)
        kinds[fname] = (len(kinds), code.endswith("s"))
        at = offset + ctypes.sizeof(ctype)
    codes.append(f"{ctypes.sizeof(cls) - at}x" if ctypes.sizeof(cls) > at else "")
    if any(n not in kinds for n in names):
        return None
    unpack = _struct.Struct("".join(codes)).unpack_from
    picks = [kinds[n] for n in names]
    if not any(text for _, text in picks):  # integers only: no loop in Python
        if len(picks) == 1:
            (i, _), = picks
            return lambda b: (unpack(b)[i],)
        get = operator.itemgetter(*(i for i, _ in picks))
        return lambda b: get(unpack(b))  # type: ignore[no-any-return]

    def one(b: bytes) -> Tuple[Any, ...]:
        values = unpack(b)
        return tuple(as_text(values[i].split(b"\0", 1)[0].decode("utf-8", "replace"))
                     if text else values[i] for i, text in picks)
    return one


def _unpack_code(ctype: Any) -> Optional[str]:
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        return f"{ctype._length_}s" if ctype._type_ is ctypes.c_char else None
    size = ctypes.sizeof(ctype)
    if size not in _INT_CODES or not hasattr(ctype, "_type_") or ctype._type_ in "fdg?":
        return None
    signed = ctype(-1).value < 0
    return _INT_CODES[size] if signed else _INT_CODES[size].upper()


# -- text lines for a whole batch of ring buffer records -----------------------------------

BatchFormatter = Callable[[bytes], List[str]]
_INT_CODES = {1: "b", 2: "h", 4: "i", 8: "q"}
_SAFE_SPEC = set(string.ascii_letters + string.digits + " <>=^+-#,_.%")


def batch_formatter(module: types.ModuleType, struct: Struct, fmt: str,
                    header: int = 8) -> Optional[BatchFormatter]:
    """A function from a run of records (each behind `header` bytes: 8 for a ring record,
    12 for a perf sample, and padded to 8) to their text lines.

    Generated once per channel: struct.iter_unpack reads every record and one f-string per
    record formats it, in a list comprehension; no ctypes object, dict or format_map per
    event. It gives exactly the text of `fmt.format_map(er_fields_X(record))`. None when the
    struct or the format needs more than this handles (integers and char arrays, plain
    field names); the caller then decodes record by record.
    """
    cls = getattr(module, struct.name)
    codes, names, pos = [f"={header}x"], {}, 0
    texts = set()
    for i, (name, ctype) in enumerate(cls._fields_):
        field, var = getattr(cls, name), f"_{i}"
        if field.offset > pos:
            codes.append(f"{field.offset - pos}x")
        if issubclass(ctype, ctypes.Array) and ctype._type_ is ctypes.c_char:
            codes.append(f"{ctype._length_}s")
            names[name] = f"(_c.get({var}) or _text({var}))"
            texts.add(name)
        elif issubclass(ctype, ctypes._SimpleCData) and ctype._type_ in "bBhHiIlLqQ":
            code = _INT_CODES[field.size]
            codes.append(code if ctype._type_.islower() else code.upper())
            names[name] = var
        else:
            codes.append(f"{field.size}x")
        pos = field.offset + field.size
    size = ctypes.sizeof(cls)
    stride = (size + header + 7) & ~7
    codes.append(f"{stride - header - pos}x")
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
    unpacked = ", ".join(f"_{i}" for i, (name, ctype) in enumerate(cls._fields_)
                         if name in names)
    layout = _struct.Struct("".join(codes))
    assert layout.size == stride
    source = (f"def er_batch(buf, _rows=_layout.iter_unpack, _c=_cache, _text=_text):\n"
              f"    return [{' '.join(parts) or repr('')} for ({unpacked},) in _rows(buf)]\n")
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
    exec(compile(source, f"<ebpf-run text of {struct.name}>", "exec"), scope)
    return scope["er_batch"]  # type: ignore[no-any-return]
