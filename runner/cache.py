"""A cache of checked-and-rendered specs, so a second run skips YAML, the schema and Jinja.

The key covers everything the result depends on: the spec's bytes and the name it was
given (the generated header names it), the architecture, and the contents of ebpf-run's
own code, templates and schema. Entries are pickles of our own frozen dataclasses, so the
directory must belong to the current user and be closed to others; otherwise, or with
EBPF_RUN_NO_CACHE=1, nothing is cached.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import stat
import tempfile
from pathlib import Path
from typing import Any, Optional

PACKAGE = Path(__file__).resolve().parent
KEEP = 64


def directory() -> Optional[Path]:
    if os.environ.get("EBPF_RUN_NO_CACHE") == "1":
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    d = base / "ebpf-run"
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.stat()
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # someone else could plant a pickle here
    return d


@functools.cache
def _tool_fingerprint() -> str:
    h = hashlib.sha256()
    for p in sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("templates/*.j2"),
                     PACKAGE / "schema.json", *PACKAGE.glob("data/*.txt")]):
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def key(spec_name: str, spec_bytes: bytes, arch: str) -> str:
    h = hashlib.sha256()
    for part in (_tool_fingerprint().encode(), spec_name.encode(), arch.encode(), spec_bytes):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def load(k: str) -> Optional[Any]:
    d = directory()
    if d is None:
        return None
    try:
        with open(d / f"{k}.pickle", "rb") as f:
            return pickle.load(f)  # our own pickles, in a directory only we can write
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def store(k: str, value: Any) -> None:
    d = directory()
    if d is None:
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, d / f"{k}.pickle")
        _prune(d)
    except OSError:
        pass  # a cache that cannot be written is only slower


def _prune(d: Path) -> None:
    """Keep the most recently written entries only."""
    entries = sorted(d.glob("*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        old.unlink(missing_ok=True)
