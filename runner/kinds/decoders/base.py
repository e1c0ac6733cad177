"""What a decoder is, and how its result reaches text and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Tuple, Union

if TYPE_CHECKING:
    from runner.model.types import TypeRef

Json = Union[None, bool, int, float, str]


class DecodeError(ValueError):
    """A raw value of a type the decoder does not take: the generated code handed over the
    wrong field, a bug to see at once rather than garbage in the output."""


@dataclass(frozen=True)
class Decoder:
    """name: how a spec asks for it. accepts: "int", "bytes" or "int|bytes".
    convert: raw -> readable value (text, or an int for ports); its text is always safe
    for a terminal. keep_raw: JSON keeps the raw number under the field's own name and
    puts the readable one under FIELD_name, because both matter (-2 and ENOENT);
    otherwise the readable value replaces the raw one (a port, an address). sizes: the
    byte lengths it takes (an address: 4, 16), checked against a field's u8[N] before
    anything runs; empty for any. int_width: the widest field it takes as a number, which
    must then be unsigned (an IPv4 address: 4 bytes, a port: 2); 0 for any integer."""

    name: str
    accepts: str
    convert: Callable[[Any], Union[str, int]]
    keep_raw: bool
    doc: str
    sizes: Tuple[int, ...] = ()
    int_width: int = 0

    def fits(self, t: TypeRef) -> bool:
        """Whether it decodes every value a field of type `t` can hold, checked before
        anything runs (an address decoder on a u8[16] of a v4 address, or on an s32 holding
        a negative number, would otherwise fail on the first such record)."""
        kinds = self.accepts.split("|")
        if t.is_struct or t.is_string or t.is_stack:
            return False
        if t.count is not None:
            return "bytes" in kinds and t.base == "u8" and (not self.sizes or t.count in self.sizes)
        if "int" not in kinds:
            return False
        scalar = t.scalar
        return not self.int_width or (scalar is not None and not scalar.signed
                                      and scalar.size <= self.int_width)

    def takes(self) -> str:
        """What fields it decodes, for messages: "a number or u8[4]"."""
        arrays = " or ".join(f"u8[{n}]" for n in self.sizes) or "a u8[N] array"
        number = f"an unsigned number of at most {8 * self.int_width} bits" \
            if self.int_width else "a number"
        spelled = {"int": number, "bytes": arrays}
        return " or ".join(spelled[k] for k in self.accepts.split("|"))

    def __call__(self, raw: Any) -> Union[str, int]:
        check_input(self.name, self.accepts, raw)
        return self.convert(raw)

    def text(self, raw: Any) -> str:
        return str(self(raw))

    def json_fields(self, field: str, raw: Any) -> Dict[str, Json]:
        """{"errno": -2, "errno_name": "ENOENT"} or {"daddr": "127.0.0.1"}."""
        value = self(raw)
        if self.keep_raw:
            return {field: raw, f"{field}_name": value}
        return {field: value}


def check_input(name: str, accepts: str, raw: Any) -> None:
    kinds: Tuple[str, ...] = tuple(accepts.split("|"))
    # bool is an int to Python, never a field value the kernel sends.
    if "int" in kinds and isinstance(raw, int) and not isinstance(raw, bool):
        return
    if "bytes" in kinds and isinstance(raw, (bytes, bytearray, memoryview)):
        return
    raise DecodeError(f"decoder {name!r} takes {accepts}, got {type(raw).__name__} {raw!r}")
