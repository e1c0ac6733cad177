"""Spec text into generated code, safely.

A C string literal is built byte by byte from the UTF-8 encoding: printable
ASCII passes, except the characters that mean something inside a literal
(`"` and `\\`) and `?` (trigraphs); everything else becomes a three-digit octal
escape, which can never run into the next character. Python literals use repr().
Comments in generated code only ever contain identifiers and numbers: the checker makes
them so with runner/support/comment_text.py.
"""

from __future__ import annotations

_PLAIN = {c for c in range(0x20, 0x7F)} - {ord('"'), ord("\\"), ord("?")}


def c_string(text: str) -> str:
    """A C string literal whose bytes are exactly `text` in UTF-8."""
    return c_bytes(text.encode("utf-8"))


def c_bytes(data: bytes) -> str:
    """A C string literal whose bytes are exactly `data` (and C's own NUL after them)."""
    return '"' + "".join(chr(b) if b in _PLAIN else f"\\{b:03o}" for b in data) + '"'


def py_literal(value: object) -> str:
    """A Python literal for a str/int/float/bool/None value."""
    return repr(value)
