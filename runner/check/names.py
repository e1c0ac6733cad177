"""Names a spec gives (structs, fields, maps, probes, programs): valid C and Python names
that cannot collide with the types, built-ins and `er_`/`_pad` names ebpf-run generates."""

from __future__ import annotations

import keyword
from typing import Iterable, Tuple

from runner.check import reserved
from runner.check.checker import Checker
from runner.kinds.builtins import BUILTINS
from runner.model.types import SCALARS, TypeRef
from runner.spec.loader import PathKey

C_KEYWORDS = frozenset({
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary",
    "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn", "_Static_assert",
    "_Thread_local", "asm", "typeof",
})
# Type names and BCC/kernel words a map, struct or field must not shadow in the C.
RESERVED = frozenset(SCALARS) | {"ctx", "bool", "true", "false", "NULL", "size_t", "ssize_t"}


def name_ok(ck: Checker, path: PathKey, name: str, what: str) -> bool:
    problem = None
    if name in C_KEYWORDS or keyword.iskeyword(name):
        problem = f"{what} name '{name}' is a C or Python keyword"
    elif what != "field" and (name in RESERVED or name in BUILTINS):
        problem = f"{what} name '{name}' is reserved (a type or built-in)"
    elif name.lower().startswith("er_") or name.startswith("_pad"):
        problem = f"{what} name '{name}' uses a prefix reserved for generated code"
    else:
        problem = reserved.problem(name, what)
    if problem:
        ck.err(path, problem, "choose another name", key=True)
    return problem is None


def hex_companions_free(ck: Checker, fields: Iterable[Tuple[str, TypeRef, PathKey]]) -> None:
    """JSON gives a char[N] field X whose bytes are not UTF-8 a companion X_hex with the
    bytes: a field of that name beside it would hide them (its value kept, the bytes lost
    without a sign), so it is refused, at that field."""
    named = {name: (t, path) for name, t, path in fields}
    for name, (t, _) in named.items():
        other = named.get(f"{name}_hex")
        if t.is_string and other is not None:
            ck.err(other[1], f"field '{name}_hex' would hide the bytes JSON gives '{name}' "
                   "(char[N]) when they are not UTF-8", "rename it", key=True)
