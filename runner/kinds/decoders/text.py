"""Text that is safe to print on a terminal, whatever the kernel or /etc/passwd held."""

from __future__ import annotations

import unicodedata


def safe_text(text: str) -> str:
    """Control and format characters (escape sequences, newlines, bidi overrides) become
    visible escapes: \\x1b, \\u202e. Backslashes stay as they are, so applying it twice
    changes nothing: a decoder escapes what it returns, and the drawing code escapes
    everything it prints, decoded or not."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf"):
            code = ord(ch)
            if code < 0x100:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def display_width(text: str) -> int:
    """Terminal columns: wide East Asian characters take two, combining marks none."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch):
            continue
        width += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return width
