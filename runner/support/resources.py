"""Files shipped inside the package: the schema, the templates, the syscall tables.

They live at the top of the repository (schema.json, templates/) and are reached
through symlinks in runner/, so a wheel carries real copies and a path below the package
finds them in a checkout and in an installed package alike. (A plain path, not
importlib.resources: importing that costs 5-7 ms of every first run, and ebpf-run is never
run from a zip.)
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any, Dict, List

PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # runner/


def read_text(*parts: str) -> str:
    with open(os.path.join(PACKAGE, *parts), encoding="utf-8") as f:
        return f.read()


def names(*parts: str) -> List[str]:
    """The names in a shipped directory, sorted."""
    return sorted(os.listdir(os.path.join(PACKAGE, *parts)))


@cache
def schema() -> Dict[str, Any]:
    loaded: Dict[str, Any] = json.loads(read_text("schema.json"))
    return loaded
