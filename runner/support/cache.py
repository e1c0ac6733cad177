"""A cache of checked-and-rendered specs, so a second run skips YAML, the schema and Jinja.

The key covers everything the result depends on: the spec's bytes and the name it was
given (the generated header names it), the architecture, and the contents of ebpf-run's
own code, templates and schema. EBPF_RUN_NO_CACHE=1 turns the cache off.

ebpf-run runs as root, and an entry decides what the BPF program does and what the
generated Python (which is executed) says: whoever can write an entry runs code as root.
Hence these rules; each one closes an attack that worked against the pickle cache.

- Format: JSON (frozen_json.py), never pickle, so reading cannot execute anything; the
  decoder rebuilds only the frozen dataclasses defined in runner.model (found by listing
  that package) from exactly their fields, each value of its declared type.
- Integrity: an entry is `MAGIC`, the sha256 of (MAGIC, its key, the payload), then the
  payload. One truncated, damaged, edited in place or copied under another key is
  ignored, removed and rebuilt, with a one-line warning. The digest is no secret: it
  catches damage, not someone able to write the directory; the checks that follow keep
  anyone else from writing there.
- Where, and which directories are trusted: cache_dir.py. In short, the directory is
  opened from "/" without following links, each component checked on its open fd, and
  refused if anyone but root or the effective user could swap any part of the path.
- Entries are opened with O_NOFOLLOW|O_NONBLOCK relative to the directory's fd, and used
  only when the open file is a regular file of the effective user, writable by no one
  else, and the same file that was looked up. A symlink, FIFO, directory, foreign or
  group/other-writable entry is ignored and removed (unlink never follows a link), with a
  warning, then rebuilt.
- Writes go to a new file made with O_EXCL|O_NOFOLLOW and mode 0600, renamed into place
  relative to the directory fd: readers see a whole entry or none. No fsync: an entry lost
  in a crash only makes one run slower. Pruning keeps the newest KEEP entries, touches only
  regular files of the effective user by names the cache writes (<sha256>.json, the old
  <sha256>.pickle, .tmp-<pid>-<16 hex>) and only ever unlinks names, so it follows no link.

Warnings go to stderr once per process each; a cache that cannot be used or written only
makes runs slower, so nothing here raises into the command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import stat
import sys
from typing import Any, Callable, Dict, List, Optional, Set, Tuple, Type, TypeVar

from runner.support import cache_dir
from runner.support.frozen_json import Codec, Corrupt, Unsupported

try:  # the builtin module: hashlib's OpenSSL set-up costs 2-3 ms of every start-up
    from _sha256 import sha256
except ImportError:  # pragma: no cover
    from hashlib import sha256

# os.path rather than pathlib: a cache hit is the start-up path, and importing pathlib
# costs about 7 ms there (BCC itself never imports it).
PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # runner/
KEEP = 64
MAGIC = b"ebpf-run cache 1\n"
MAX_ENTRY = 64 << 20  # far above any real entry; reading is bounded whatever is there
SUFFIX = ".json"

_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH

T = TypeVar("T")
_warned: Set[str] = set()


def warn(text: str) -> None:
    if text in _warned:
        return
    _warned.add(text)
    with contextlib.suppress(OSError, ValueError):  # stderr closed or full: still only a cache
        sys.stderr.write(f"ebpf-run: warning: {text}\n")
        sys.stderr.flush()


# -- keys


@functools.cache
def _tool_fingerprint() -> str:
    """ebpf-run's own files, by name, size and modification time: reading their contents
    (over 1 MB with the shipped tables) cost ~25 ms of every start-up, and any edit, checkout
    or install changes a file's time. What protects root is the owner and mode checks on the
    cache, not this key."""
    h = sha256()
    files = [os.path.join(PACKAGE, "schema.json")]
    for d, dirs, names in os.walk(PACKAGE):
        dirs[:] = sorted(n for n in dirs if n != "__pycache__" and n != "templates")
        files += [os.path.join(d, n) for n in names if n.endswith((".py", ".txt"))]
    templates = os.path.join(PACKAGE, "templates")  # a symlink: os.walk does not follow it
    files += [os.path.join(templates, n) for n in os.listdir(templates) if n.endswith(".j2")]
    for p in sorted(files):
        st = os.stat(p)
        h.update(f"{os.path.relpath(p, PACKAGE)}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return h.hexdigest()


def key(spec_name: str, spec_bytes: bytes, arch: str,
        params: Tuple[Tuple[str, str], ...] = ()) -> str:
    """`params` are `--set` pairs in order; keyed are the values applied, the last of each
    name (sorting the pairs gave `pid=1 pid=2` the key of `pid=2 pid=1`)."""
    applied = sorted(dict(params).items())
    h = sha256()
    for part in (_tool_fingerprint().encode(), spec_name.encode(), arch.encode(), spec_bytes,
                 repr(applied).encode(), _kernel_identity().encode()):
        h.update(len(part).to_bytes(8, "little") + part)
    return h.hexdigest()


def _kernel_identity() -> str:
    """What the checker reads from the running kernel: tracepoint formats (live tracefs,
    or the shipped table when tracefs cannot be read) and BTF offsets. A new kernel has a
    new release or build string; tracefs mounted or not switches the formats' source."""
    u = os.uname()
    tracefs = os.access("/sys/kernel/tracing/events", os.R_OK)
    return f"{u.release}\0{u.version}\0{u.machine}\0{tracefs}"


# -- where


def directory() -> Optional[str]:
    """The cache directory that would be used now, or None (after any warning)."""
    d = _open()
    if d is None:
        return None
    with d:
        return d.path


def _open() -> Optional[cache_dir.Dir]:
    if os.environ.get("EBPF_RUN_NO_CACHE") == "1":
        return None
    d, refused = cache_dir.find()
    # Refusals are said only when they leave no cache: `sudo -E` falls back to root's own
    # home on every run, and a warning each time would be noise about a safe decision.
    for text in refused:
        warn(text)
    return d


# -- entries


def model_classes() -> List[type]:
    """The frozen dataclasses defined in runner.model's modules: what an entry may name.
    Found by listing the package, so a new module or class there needs no change here."""
    import importlib

    import runner.model as package

    root = os.path.dirname(package.__file__ or "")
    found = []
    for d, dirs, names in os.walk(root):
        dirs[:] = sorted(n for n in dirs if n != "__pycache__")
        for n in sorted(names):
            if not n.endswith(".py"):
                continue
            parts = os.path.relpath(os.path.join(d, n[:-3]), root).split(os.sep)
            if parts[-1] == "__init__":
                parts.pop()
            modname = ".".join([package.__name__, *parts])
            for obj in vars(importlib.import_module(modname)).values():
                if (isinstance(obj, type) and dataclasses.is_dataclass(obj)
                        and obj.__module__ == modname
                        and obj.__dataclass_params__.frozen):  # type: ignore[attr-defined]
                    found.append(obj)
    return found


_codecs: Dict[type, Codec] = {}


def _codec(top: type) -> Codec:
    """The codec for entries holding a `top`: the model's classes and `top` itself."""
    if top not in _codecs:
        _codecs[top] = Codec([*model_classes(), top])
    return _codecs[top]


def load(k: str, expected: Type[T],
         on_found: Optional[Callable[[], None]] = None) -> Optional[T]:
    """The entry stored under key `k`, rebuilt as an `expected`, or None. `on_found` is
    called once the entry is read, before it is checked and rebuilt (the longer part)."""
    d = _open()
    if d is None:
        return None
    name = k + SUFFIX
    with d:
        try:
            data = _read(d, name)
        except OSError as e:  # unexpected (EIO...): a miss, not a failed command
            warn(f"cannot read cache entry {os.path.join(d.path, name)}: {e.strerror or e}")
            return None
        if data is None:
            return None
        if on_found is not None:
            on_found()
        try:
            value: T = _codec(expected).loads(_unseal(k, data), expected)
            return value
        except (Corrupt, Unsupported) as e:
            _discard(d, name, str(e))
            return None


def store(k: str, value: Any) -> None:
    try:
        codec = _codec(type(value))
        payload = codec.dumps(value)
        # Read it back now: a model field this codec cannot carry would otherwise make
        # every later run a silent miss.
        if codec.loads(payload, type(value)) != value:
            raise Unsupported("it does not read back equal")
    except (Unsupported, Corrupt) as e:
        warn(f"not caching: {e}")
        return
    d = _open()
    if d is None:
        return
    with d:
        tmp = _temp_name()
        try:
            fd = os.open(tmp, _CREATE, 0o600, dir_fd=d.fd)
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + _digest(k, payload) + b"\n" + payload)
            os.replace(tmp, k + SUFFIX, src_dir_fd=d.fd, dst_dir_fd=d.fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=d.fd)
            return  # a cache that cannot be written is only slower
        with contextlib.suppress(OSError):
            _prune(d)


def _digest(k: str, payload: bytes) -> bytes:
    return sha256(MAGIC + k.encode() + b"\n" + payload).hexdigest().encode()


def _unseal(k: str, data: bytes) -> bytes:
    """The payload of an entry, if its digest matches its key and payload."""
    start = len(MAGIC) + 64 + 1
    if not data.startswith(MAGIC) or data[start - 1:start] != b"\n":
        raise Corrupt("not an ebpf-run cache entry of this version")
    payload = data[start:]
    if data[len(MAGIC):start - 1] != _digest(k, payload):
        raise Corrupt("its checksum does not match (damaged, truncated or edited)")
    return payload


def _read(d: cache_dir.Dir, name: str) -> Optional[bytes]:
    try:
        looked = os.stat(name, dir_fd=d.fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(looked.st_mode):  # not even opened: opening a FIFO or device acts
        _discard(d, name, f"it is {_kind(looked.st_mode)}, not a regular file")
        return None
    try:
        fd = os.open(name, _READ, dir_fd=d.fd)
    except FileNotFoundError:
        return None  # pruned by another run meanwhile
    except OSError as e:
        _discard(d, name, f"it cannot be opened ({e.strerror})")
        return None
    with os.fdopen(fd, "rb") as f:
        problem = _entry_problem(os.fstat(fd), looked)
        if problem is not None:
            _discard(d, name, problem)
            return None
        data = f.read(MAX_ENTRY + 1)
    if len(data) > MAX_ENTRY:
        _discard(d, name, "it is too large")
        return None
    return data


def _entry_problem(st: os.stat_result, looked: os.stat_result) -> Optional[str]:
    if not stat.S_ISREG(st.st_mode):
        return f"it is {_kind(st.st_mode)}, not a regular file"
    if (st.st_dev, st.st_ino) != (looked.st_dev, looked.st_ino):
        return "it was replaced while being opened"
    if st.st_uid != os.geteuid():
        return f"it belongs to uid {st.st_uid}, not {os.geteuid()}"
    if st.st_mode & _OTHERS_WRITE:
        return f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return what
    return "not a regular file"


def _discard(d: cache_dir.Dir, name: str, why: str) -> None:
    """Warn about a bad entry and remove it, so that the rebuilt one can take its place."""
    where = os.path.join(d.path, name)
    try:
        try:
            os.unlink(name, dir_fd=d.fd)  # removes a link itself, never what it points to
        except IsADirectoryError:
            os.rmdir(name, dir_fd=d.fd)
    except FileNotFoundError:
        pass
    except OSError as e:
        warn(f"ignored cache entry {where}: {why}; cannot remove it ({e.strerror})")
        return
    warn(f"ignored cache entry {where}: {why}; rebuilding it")


def _prune(d: cache_dir.Dir) -> None:
    """Keep the newest KEEP entries; drop entries of the old pickle format and temp files
    of runs that died while writing. Only files the cache makes are touched: regular files
    of the effective user by the names it writes (anything else in the directory is not
    ours to delete, even where a link once led root). Names are unlinked, so no link is
    ever followed."""
    import time

    entries, stale = [], []
    with os.scandir(d.fd) as it:
        for e in it:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                continue
            if _is_entry_name(e.name):
                entries.append((st.st_mtime, e.name))
            elif _is_entry_name(e.name, ".pickle") or (
                    _is_temp_name(e.name) and time.time() - st.st_mtime > 3600):
                stale.append(e.name)
    entries.sort(reverse=True)
    for name in [n for _, n in entries[KEEP:]] + stale:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=d.fd)


def _temp_name() -> str:
    return f".tmp-{os.getpid()}-{os.urandom(8).hex()}"


def _is_temp_name(name: str) -> bool:
    parts = name.split("-")
    return (len(parts) == 3 and parts[0] == ".tmp" and parts[1].isascii()
            and parts[1].isdigit() and _is_hex(parts[2], 16))


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and all(c in "0123456789abcdef" for c in text)


def _is_entry_name(name: str, suffix: str = SUFFIX) -> bool:
    return name.endswith(suffix) and _is_hex(name[:-len(suffix)], 64)
