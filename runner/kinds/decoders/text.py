"""Text that is safe to print on a terminal, whatever the kernel or /etc/passwd held."""

from __future__ import annotations

import unicodedata


def safe_text(text: str) -> str:
    """Control and format characters (escape sequences, newlines, bidi overrides) become
    visible escapes: \\x1b, \\u202e. The backslash is doubled so an escape in the output
    always means one in the input."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
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
