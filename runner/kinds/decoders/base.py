"""What a decoder is, and how its result reaches text and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Tuple, Union

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
    anything runs; empty for any."""

    name: str
    accepts: str
    convert: Callable[[Any], Union[str, int]]
    keep_raw: bool
    doc: str
    sizes: Tuple[int, ...] = ()

    def takes(self) -> str:
        """What fields it decodes, for messages: "a number or u8[4]"."""
        arrays = " or ".join(f"u8[{n}]" for n in self.sizes) or "a u8[N] array"
        spelled = {"int": "a number", "bytes": arrays}
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
