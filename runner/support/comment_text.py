"""Spec text fit for a comment in generated code.

The checker puts file names and attach targets into the model as comment-safe text, and the
code generator writes them into C comments and Python docstrings; it lives here, below both.
"""

from __future__ import annotations

_COMMENT_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                    " ._-+,:;=@()[]/<>#%&!~^|{}$'")


def comment_text(text: str) -> str:
    """Text fit for a C comment and a Python docstring: anything else becomes '?'.

    No '*' (no "*/"), no quote or backslash (no closing or escaping a docstring), no newline.
    File names and attach targets pass through here on their way into generated code.
    """
    return "".join(c if c in _COMMENT_SAFE else "?" for c in text)
