"""Files shipped inside the package: the schema, the templates, the syscall tables.

They live at the top of the repository (schema.json, templates/) and are reached
through symlinks in runner/, so a wheel carries real copies and
importlib.resources finds them in a checkout and in an installed package alike.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Dict


def read_text(*parts: str) -> str:
    node = resources.files("runner")
    for p in parts:
        node = node.joinpath(p)
    return node.read_text(encoding="utf-8")


@cache
def schema() -> Dict[str, Any]:
    loaded: Dict[str, Any] = json.loads(read_text("schema.json"))
    return loaded
