"""Names that mean something already where a spec's names end up: in the C that BCC
compiles (its headers' macros, library built-ins, declarations) and in the Python ctypes
module (special names, ctypes' own attributes).

Refused rather than renamed: a map's name is also how the runtime and BCC find the map,
and a struct's and field's names are what output formats and JSON keys show, so a
generated prefix would leak into everything a user reads. The C side's list is measured,
not guessed: scripts/gen-reserved compiles every identifier BCC's prelude knows in each
role and ships the ones that fail (runner/data/reserved-c.txt).
"""

from __future__ import annotations

from functools import cache
from typing import Dict, FrozenSet, Optional

# The roles of runner/data/reserved-c.txt, by what names_ok calls the element.
C_ROLES = {"map": "map", "struct": "struct", "field": "field"}

# ctypes reads these on a Structure subclass (or its metaclass, which a field would
# shadow): a field of that name breaks the generated class or its decoding.
CTYPES_ATTRIBUTES = frozenset({
    "from_buffer", "from_buffer_copy", "from_address", "from_param", "in_dll", "_objects",
})


@cache
def c_reserved() -> Dict[str, FrozenSet[str]]:
    """name -> the roles in which it breaks the generated C."""
    from runner.support.resources import read_text

    out = {}
    for line in read_text("data", "reserved-c.txt").splitlines():
        if line and not line.startswith("#"):
            name, roles = line.split()
            out[name] = frozenset(roles.split(","))
    return out


def problem(name: str, what: str) -> Optional[str]:
    """Why `name` cannot name a `what` (map, struct, field...), or None."""
    if name.startswith("__") and name.endswith("__"):
        return f"{what} name '{name}' is a Python special name"
    if what == "field" and (name in CTYPES_ATTRIBUTES
                            or (len(name) > 1 and name[0] == "_" and name[-1] == "_")):
        return f"field name '{name}' is a name ctypes structures use themselves"
    role = C_ROLES.get(what)
    if role and role in c_reserved().get(name, ()):
        return (f"{what} name '{name}' already means something in the C that BCC compiles "
                "(a macro, library function or declaration of its headers)")
    if what == "map" and name.startswith("bpf_"):
        return f"map name '{name}' uses the prefix of BPF helpers"
    return None
