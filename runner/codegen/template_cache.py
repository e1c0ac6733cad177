"""The templates' compiled code, made at install time like Python's own .pyc files.

On a first run Jinja compiles every template it renders from source: about 15 ms of a
first run's start-up. `python -m runner.codegen.template_build` (run by scripts/setup)
compiles them all once into compiled-templates/ beside this module; a render then loads
each template's code from there instead of compiling it.

What is trusted: only files in the package's own directory, the same trust as its .pyc
files (the code is executed as any module's is), and only a regular file (no link
followed) owned by root or by this user and writable by nobody else. An entry names the
Python bytecode version, the Jinja version and the checksum of the template source it
was compiled from (Jinja's own: a SHA-1 of the text), then the sha256 of that header and
the code, checked before marshal reads a byte of the code: marshal trusts its input (a
flipped byte gave a SIGSEGV, a traceback, or other C with exit 0). Anything else (a
template edited after setup, another Python, a damaged or truncated file) is ignored and
the template is compiled from source, as without this cache. The digest catches damage,
not someone able to write the package's directory (who could edit its .py files anyway).
Nothing is ever written at run time.
"""

from __future__ import annotations

import importlib.util
import marshal
import os
import stat
import tempfile
from pathlib import Path
from types import CodeType
from typing import Optional

import jinja2
from jinja2.bccache import Bucket

from runner.support.cache import sha256

DIRECTORY = Path(__file__).resolve().parent / "compiled-templates"
_MAGIC = b"ebpf-run template code 2\n"


class InstalledBytecode(jinja2.BytecodeCache):
    """Reads what runner/codegen/template_build.py wrote; writes nothing."""

    def __init__(self, directory: Path = DIRECTORY):
        self.directory = directory

    def load_bytecode(self, bucket: Bucket) -> None:
        data = _read_trusted(self.directory / f"{bucket.key}.code")
        if data is None:
            return
        code_bytes = _unseal(bucket.checksum, data)
        if code_bytes is None:  # stale or damaged: compile from source
            return
        try:
            code = marshal.loads(code_bytes)
        except (EOFError, ValueError, TypeError):  # damaged: compile from source
            return
        # A damaged type byte can make marshal read a number or a string, which Jinja
        # would hand to exec(): only code is taken.
        if isinstance(code, CodeType):
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        return None


class Writer(InstalledBytecode):
    """The build step's cache: every template compiled is written."""

    def load_bytecode(self, bucket: Bucket) -> None:
        return None

    def dump_bytecode(self, bucket: Bucket) -> None:
        if bucket.code is None:
            return
        data = _seal(bucket.checksum, marshal.dumps(bucket.code))
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.directory / f"{bucket.key}.code")
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _header(checksum: str) -> bytes:
    return (_MAGIC + importlib.util.MAGIC_NUMBER + b"\n"
            + jinja2.__version__.encode() + b"\n" + checksum.encode() + b"\n")


def _seal(checksum: str, code: bytes) -> bytes:
    header = _header(checksum)
    return header + sha256(header + code).hexdigest().encode() + b"\n" + code


def _unseal(checksum: str, data: bytes) -> Optional[bytes]:
    """The marshalled code of an entry for this template source, Python and Jinja, if the
    digest over its header and code matches."""
    header = _header(checksum)
    start = len(header) + 64 + 1
    if not data.startswith(header) or data[start - 1:start] != b"\n":
        return None
    code = data[start:]
    if data[len(header):start - 1] != sha256(header + code).hexdigest().encode():
        return None
    return code


def _read_trusted(path: Path) -> Optional[bytes]:
    # O_NONBLOCK: opening a FIFO would otherwise wait for a writer; fstat then refuses it.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except OSError:  # none (not built, or a new template), or a link
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if (not stat.S_ISREG(st.st_mode) or st.st_uid not in (0, os.geteuid())
                or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)):
            return None
        return f.read()
