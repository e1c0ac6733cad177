"""Where the compile cache lives, and whether it can be trusted: the directory is found
and opened here, never by name again (cache.py works on its fd).

The attack this stops: a user who owns the parent of root's cache directory (`sudo -E`
keeps the user's HOME; XDG_CACHE_HOME may point into a user's tree) swapped symlinks
between root's check of the directory and its open of an entry, and root loaded the
user's file after a few runs. So trust is decided on open files, never on names:

- Where: $XDG_CACHE_HOME/ebpf-run when XDG_CACHE_HOME is absolute (the XDG spec calls a
  relative one invalid: it is ignored), else $HOME/.cache/ebpf-run (HOME must be
  absolute). When that cannot be used, the effective user's home from the password
  database: under `sudo -E`, root caches in /root/.cache instead, without a word. When
  neither can be used there is no cache, and cache.py names in a warning each location
  refused as unsafe.
- Trust: the location is resolved (realpath), then opened from "/" one component at a
  time, relative to the previous directory's fd, with O_NOFOLLOW, each opened directory
  checked with fstat. Every ancestor must belong to root or the effective user and be
  writable by no one else, unless it is sticky (like /tmp, where others cannot rename
  what is not theirs): whoever could rename an entry of an ancestor could swap in a
  directory of theirs between any check and any use, so such a location is refused
  outright, for every user, not only root. A symbolic link in the configured path is
  honoured only if it sits in a directory that passes these checks; a link swapped in
  after resolution makes the walk fail (ELOOP, or ENOTDIR under O_DIRECTORY), and is
  refused too. The cache directory itself must belong to the effective user and be
  writable by no one else; one of root's, left in a user's home by `sudo -E`, is
  skipped without a warning (unusable, but nobody could abuse it).
- Creation: at most the cache base (XDG_CACHE_HOME or ~/.cache) and ebpf-run in it, mode
  0700, each only inside an existing directory the effective user owns: HOME=/nonexistent
  creates nothing, nor does a user in someone else's /tmp. A directory that cannot be
  made (a read-only home) means no cache, silently: nothing is unsafe about it.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Iterator, List, Optional, Tuple

_SEARCH = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


class _Refused(Exception):
    """A location that exists but must not be used; the message says why."""


class _Missing(Exception):
    """A location that does not exist and may not be created: nothing to warn about."""


class Dir:
    """The open cache directory: its fd (for every *at call) and its path (for messages)."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path

    def __enter__(self) -> Dir:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def find() -> Tuple[Optional[Dir], List[str]]:
    """The first usable cache directory, open; if there is none, why each location that
    exists was refused."""
    refused = []
    for path in _locations():
        try:
            return Dir(_open_location(path), path), []
        except _Missing:
            continue
        except _Refused as e:
            refused.append(f"not using the cache in {path}: {e}")
        except OSError as e:  # nothing expected (fstat of an open fd...), still no traceback
            refused.append(f"not using the cache in {path}: {e.strerror or e}")
    return None, refused


def _locations() -> Iterator[str]:
    """Where the cache directory may be, best first; the password database is read only
    when the environment's choice cannot be used."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    home = os.environ.get("HOME", "")
    if os.path.isabs(xdg):
        first: Optional[str] = os.path.join(xdg, "ebpf-run")
    elif os.path.isabs(home):
        first = os.path.join(home, ".cache", "ebpf-run")
    else:
        first = None
    if first is not None:
        yield first
    account = _account_home()
    if account and os.path.isabs(account) and os.path.join(account, ".cache", "ebpf-run") != first:
        yield os.path.join(account, ".cache", "ebpf-run")


def _account_home() -> Optional[str]:
    import pwd  # builtin; only when the environment's location is unusable

    try:
        return pwd.getpwuid(os.geteuid()).pw_dir
    except KeyError:
        return None


def _open_location(path: str) -> int:
    """Open the cache directory `path` as the module docstring says; return its fd.

    The walk goes from "/" one component at a time, each opened relative to the previous
    one without following links and checked on its fd. The last two components (the
    cache base, e.g. ~/.cache, and ebpf-run) are made if missing."""
    names = [n for n in _resolve(path).split("/") if n]
    fd = os.open("/", _SEARCH)
    here = "/"
    try:
        _check_ancestor(fd, here)
        for i, name in enumerate(names):
            last = i == len(names) - 1
            here = os.path.join(here, name)
            flags = _LIST if last else _SEARCH
            if i >= len(names) - 2:
                child = _open_or_make(fd, name, flags, here)
            else:
                child = _openat(fd, name, flags, here)
            os.close(fd)
            fd = child
            if last:
                _check_own(fd, here)
            else:
                _check_ancestor(fd, here)
        return fd
    except BaseException:
        os.close(fd)
        raise


def _resolve(path: str) -> str:
    """The path without links, to be walked strictly: a link is honoured only as far as
    the walk then trusts the directories it leads through."""
    try:
        return os.path.realpath(path)
    except OSError as e:  # e.g. a symlink loop
        raise _Refused(f"{path} cannot be resolved ({e.strerror})") from None


def _openat(dir_fd: int, name: str, flags: int, path: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Missing(path) from None
    except OSError as e:
        # O_NOFOLLOW on a link gives ELOOP, or ENOTDIR along with O_DIRECTORY: refused
        # either way; lstat only words the message.
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise _Refused(f"{path} is a symbolic link (swapped in after it was resolved?)")\
                from None
        raise _Refused(f"{path}: {e.strerror}") from None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_or_make(dir_fd: int, name: str, flags: int, path: str) -> int:
    try:
        return _openat(dir_fd, name, flags, path)
    except _Missing:
        if os.fstat(dir_fd).st_uid != os.geteuid():
            raise  # create only in a directory of our own: never /nonexistent/.cache
    try:
        os.mkdir(name, 0o700, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile: opened and checked below like any other
    except OSError:
        raise _Missing(path) from None  # e.g. a read-only home: unusable, nothing unsafe
    return _openat(dir_fd, name, flags, path)


def _check_ancestor(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (0, os.geteuid()):
        raise _Refused(f"{path} belongs to uid {st.st_uid}, who could swap the cache for "
                       "files of their own")
    if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
        raise _Refused(f"{path} is writable by group or others (mode "
                       f"{stat.S_IMODE(st.st_mode):o}), who could swap the cache")


def _check_own(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if st.st_uid == 0 and os.geteuid() != 0:
        # Left by an earlier `sudo -E` run: unusable by us but nothing anyone could abuse,
        # so, as for a missing home, say nothing on every run.
        raise _Missing(path)
    if st.st_uid != os.geteuid():
        raise _Refused(f"it belongs to uid {st.st_uid}, not {os.geteuid()}")
    if st.st_mode & _OTHERS_WRITE:
        raise _Refused(f"it is writable by group or others (mode "
                       f"{stat.S_IMODE(st.st_mode):o})")
