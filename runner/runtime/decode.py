"""User-space decoding with the generated ctypes module.

The rendered Python is executed as a module (its import checks every size and
offset against the model); records are then read in place with
`Class.from_address`, which costs about a tenth of BCC's `table.event()`.
Every record's size is checked on arrival.
"""

from __future__ import annotations

import codecs
import ctypes
import operator
import struct as _struct
import sys
import types
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from runner.codegen.batch import INT_CODES, Field, batch_source
from runner.errors import KernelError
from runner.model.spec import Spec, Struct
from runner.model.types import TypeRef
from runner.output.escape import RawText, as_text, escape, read_failure


def load_types(source: str, spec: Spec) -> types.ModuleType:
    module = types.ModuleType(f"ebpf_run_types_{spec.name.replace('-', '_')}")
    code = compile(source, f"<ebpf-run types for {spec.file}>", "exec")
    exec(code, module.__dict__)  # our own rendered code: classes and a layout check
    # The model of every struct, for the decoders of structs nested in others (_texts_of).
    module.__dict__[_STRUCTS] = {s.name: s for s in spec.structs}
    return module


_STRUCTS = "er_model_structs"


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
    return RecordDecoder(struct, getattr(module, struct.name), _texts_of(module, struct),
                         struct.layout.size, 7 if padded else 0)


def _texts_of(module: types.ModuleType, struct: Struct) -> Callable[[Any], Dict[str, Any]]:
    """The generated er_fields_ of `struct`, with its char arrays made safe to format
    (output.escape.as_text; text output shows them escaped, JSON exactly as they are) and
    a failed read told from an empty string, in the structs nested in it too."""
    fields: Callable[[Any], Dict[str, Any]] = getattr(module, f"er_fields_{struct.name}")
    structs: Dict[str, Struct] = getattr(module, _STRUCTS)
    # name -> (decoder, array length or None): each nested struct decoded from its own bytes
    nested = {m.name: (_texts_of(module, structs[m.type.base]), m.type.count)
              for m in struct.layout.fields if m.type.is_struct}
    # name -> (offset, size), for the rare values that need the field's bytes
    strings = {m.name: (m.offset, m.type.count or 1)
               for m in struct.layout.fields if m.type.is_string}
    if not strings and not nested:
        return fields
    names = tuple(strings)

    def with_text(r: Any) -> Dict[str, Any]:
        d = fields(r)
        for name, (inner, count) in nested.items():
            value = getattr(r, name)
            d[name] = inner(value) if count is None else [inner(v) for v in value]
        for name in names:
            value = d[name]
            if value and "\ufffd" not in value:  # the usual case first
                d[name] = as_text(value)
                continue
            offset, size = strings[name]
            if value:
                _with_bytes(d, name, getattr(r, name), size)
            else:
                _empty_or_failed(d, name,
                                 ctypes.string_at(ctypes.addressof(r) + offset, min(size, 3)))
        return d

    return with_text


def _empty_or_failed(d: Dict[str, Any], name: str, raw: bytes) -> None:
    """An empty string field, or the failed read marked in its bytes (`raw`: the first
    three): then the field is a ReadFailed and FIELD_error names the errno."""
    failed = read_failure(raw)
    if failed is not None:
        d[name] = failed
        d.setdefault(f"{name}_error", failed.name)


def _with_bytes(d: Dict[str, Any], name: str, raw: bytes, size: int) -> None:
    """A string field holding U+FFFD: where its bytes (up to the NUL) are not UTF-8,
    FIELD_hex keeps them, as JSON cannot, and so does the value (a RawText: an aggregation
    keyed by the field gives its key part the same companion)."""
    value = _text_of(raw, size)
    d[name] = value
    if isinstance(value, RawText):
        d.setdefault(f"{name}_hex", raw.hex())


def _text_of(raw: bytes, size: int) -> str:
    """The text of a char[size] field's bytes up to the NUL: a RawText, holding them, when
    they are not UTF-8."""
    text = decoded(raw, size)
    if "\ufffd" not in text:
        return as_text(text)
    try:  # a character cut at the end of a full field is not bad data (see decoded)
        codecs.utf_8_decode(raw, "strict", len(raw) < size - 1)
    except UnicodeDecodeError:
        return RawText(text, raw)
    return as_text(text)


def value_decoder(module: types.ModuleType, t: TypeRef) -> Callable[[bytes], Any]:
    """bytes of a map key or value -> a plain Python value."""
    if t.is_struct:
        cls = getattr(module, t.base)
        texts = _texts_of(module, getattr(module, _STRUCTS)[t.base])
        def one(b: bytes) -> Any:
            return texts(cls.from_buffer_copy(b))
        unit = ctypes.sizeof(cls)
    elif t.is_string:
        return _string_value
    else:
        assert t.scalar is not None
        sc = t.scalar
        one = lambda b: int.from_bytes(b, sys.byteorder, signed=sc.signed)  # noqa: E731
        unit = sc.size
    if t.count is None:
        return one
    return lambda b: [one(b[i * unit:(i + 1) * unit]) for i in range(t.count or 0)]


def _string_value(b: bytes) -> Any:
    """A char[N] map key or value: its text (a RawText if not UTF-8), or the failed read
    the C marked in it."""
    text = b.split(b"\0", 1)[0]
    failed = None if text else read_failure(b[:3])
    return failed if failed is not None else _text_of(text, len(b))


def decoded(text: bytes, size: int) -> str:
    """The text of a char[size] field's bytes up to its NUL, invalid UTF-8 replaced. A
    string that fills its field and ends inside a character was cut there (the kernel cuts
    a task's name at 15 bytes, a copy into a smaller field cuts too): the partial character
    is left out rather than shown as U+FFFD (a read ebpf-run cut ends in "..." at a
    character's start already: codegen/c_strings.py)."""
    if len(text) < size - 1:
        return text.decode("utf-8", "replace")
    return codecs.utf_8_decode(text, "replace", False)[0]  # not final: a cut tail waits


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
        return tuple(_string_value(values[i]) if text else values[i] for i, text in picks)
    return one


def _unpack_code(ctype: Any) -> Optional[str]:
    if isinstance(ctype, type) and issubclass(ctype, ctypes.Array):
        return f"{ctype._length_}s" if ctype._type_ is ctypes.c_char else None
    size = ctypes.sizeof(ctype)
    if size not in INT_CODES or not hasattr(ctype, "_type_") or ctype._type_ in "fdg?":
        return None
    signed = ctype(-1).value < 0
    return INT_CODES[size] if signed else INT_CODES[size].upper()


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
        failed = read_failure(raw) if raw[:1] == b"\0" else None
        text = decoded(raw.split(b"\0", 1)[0], len(raw)) if failed is None else str(failed)
        value = cache[raw] = escape(text)
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
