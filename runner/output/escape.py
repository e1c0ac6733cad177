"""Text output shows every string value on one line, with nothing a terminal obeys.

A process name, a file name or any other value the traced system chooses could otherwise
start a fake record (a newline), rewrite the line (CR) or drive the terminal (ESC, C1
controls). In text output such characters in a value are written as visible escapes:

    backslash  -> \\\\        so the escapes below are unambiguous
    newline, CR, tab  -> \\n \\r \\t
    other C0 controls, DEL and C1 controls -> \\xHH
    U+2028, U+2029 (line and paragraph separators), lone surrogates and the
    bidirectional controls (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: an
    override can show a name or a whole line backwards, "Trojan Source") -> \\uHHHH

Bytes that are not UTF-8 were already decoded as U+FFFD, which is printed as it is (JSON
also carries their bytes: FIELD_hex in events, key_hex and value_hex in map dumps,
runtime/decode.py and RawText below).
JSON output keeps the exact value: json.dumps escapes what JSON needs, and the JSON sink
also escapes U+0085, U+2028 and U+2029 (\\u0085...), which JSON allows raw but line-based
readers (Python's str.splitlines, JavaScript before ES2019) take for line ends.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from typing import Match, Optional

_UNSAFE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff"
                     "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(m: Match[str]) -> str:
    c = m.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def escape(text: str) -> str:
    """A value as text output shows it: one line, no control characters, reversible."""
    raw = str.__str__(text)  # a plain str, also for a Text
    return raw if _UNSAFE.search(raw) is None else _UNSAFE.sub(_escaped, raw)


class Text(str):
    """A string value read from the kernel: formatting it (`{comm}`, `{comm:>16}`,
    `{comm!s}`) gives the escaped form, while its content stays exact for JSON, which
    encodes a str subclass by its characters, never through __str__ or __format__."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return format(escape(self), spec)

    def __str__(self) -> str:
        return escape(self)


class RawText(Text):
    """A string value whose bytes are not UTF-8, U+FFFD in place of those that fail: `raw`
    keeps the bytes (up to the NUL) wherever the value goes (a map dump's key or value,
    an aggregation's key part), for JSON's `_hex` companion (hex_of)."""

    raw: bytes

    def __new__(cls, text: str, raw: bytes) -> RawText:
        self = super().__new__(cls, text)
        self.raw = raw
        return self


def hex_of(value: object) -> Optional[str]:
    """The bytes of a value that is not UTF-8, in hex; None for any other value."""
    return value.raw.hex() if isinstance(value, RawText) else None


def as_text(value: str) -> str:
    """`value` as a Text when formatting must escape it; a str that needs no escape is
    returned as it is, formatting it already gives its escaped form (a quarter of the
    cost per event of a Text)."""
    return value if _UNSAFE.search(value) is None else Text(value)


@dataclass(frozen=True)
class ReadFailed:
    """A string field whose read failed in the probe (bpf_probe_read_*_str returned an
    error: a bad or paged-out pointer), not an empty string. Text shows
    `<read failed: EFAULT>`; JSON has null, and `FIELD_error` names the errno."""

    errno: int

    @property
    def name(self) -> str:
        return errno.errorcode.get(self.errno, f"errno {self.errno}")

    def __str__(self) -> str:
        return f"<read failed: {self.name}>"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def read_failure(raw: bytes) -> ReadFailed | None:
    """The failure marked in a string field's raw bytes (codegen/c_strings.py: an empty
    string, then 0xff and the errno), or None for a string that was read."""
    if raw[:2] != b"\0\xff":
        return None
    return ReadFailed(raw[2] if len(raw) > 2 else 0)
