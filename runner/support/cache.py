"""A cache of checked-and-rendered specs, so a second run skips YAML, the schema and Jinja.

The key covers everything the result depends on: the spec's bytes and the name it was
given (the generated header names it), the architecture, and the contents of ebpf-run's
own code, templates and schema. Entries are pickles of our own frozen dataclasses, so the
directory must belong to the current user and be closed to others; otherwise, or with
EBPF_RUN_NO_CACHE=1, nothing is cached.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import stat
from typing import Any, Optional

try:  # the builtin module: hashlib's OpenSSL set-up costs 2-3 ms of every start-up
    from _sha256 import sha256
except ImportError:  # pragma: no cover
    from hashlib import sha256

# os.path rather than pathlib: a cache hit is the start-up path, and importing pathlib
# costs about 7 ms there (BCC itself never imports it).
PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # runner/
KEEP = 64


def directory() -> Optional[str]:
    if os.environ.get("EBPF_RUN_NO_CACHE") == "1":
        return None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    d = os.path.join(base, "ebpf-run")
    try:
        os.makedirs(d, mode=0o700, exist_ok=True)
        st = os.stat(d)
    except OSError:
        return None
    if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # someone else could plant a pickle here
    return d


@functools.cache
def _tool_fingerprint() -> str:
    h = sha256()
    files = [os.path.join(PACKAGE, "schema.json")]
    for d, dirs, names in os.walk(PACKAGE):
        dirs[:] = sorted(n for n in dirs if n != "__pycache__" and n != "templates")
        files += [os.path.join(d, n) for n in names if n.endswith((".py", ".txt"))]
    templates = os.path.join(PACKAGE, "templates")  # a symlink: os.walk does not follow it
    files += [os.path.join(templates, n) for n in os.listdir(templates) if n.endswith(".j2")]
    for p in sorted(files):
        with open(p, "rb") as f:
            h.update(os.path.relpath(p, PACKAGE).encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()


def key(spec_name: str, spec_bytes: bytes, arch: str) -> str:
    h = sha256()
    for part in (_tool_fingerprint().encode(), spec_name.encode(), arch.encode(), spec_bytes):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def load(k: str) -> Optional[Any]:
    d = directory()
    if d is None:
        return None
    try:
        with open(os.path.join(d, f"{k}.pickle"), "rb") as f:
            return pickle.load(f)  # our own pickles, in a directory only we can write
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
        return None


def store(k: str, value: Any) -> None:
    d = directory()
    if d is None:
        return
    import tempfile  # only on a miss

    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, os.path.join(d, f"{k}.pickle"))
        _prune(d)
    except OSError:
        pass  # a cache that cannot be written is only slower


def _prune(d: str) -> None:
    """Keep the most recently written entries only."""
    entries = sorted((e for e in os.scandir(d) if e.name.endswith(".pickle")),
                     key=lambda e: e.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old.path)
