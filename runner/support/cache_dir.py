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
- Trust: the configured path is walked from "/" one component at a time, each opened
  relative to the previous directory's fd with O_NOFOLLOW and checked with fstat; it is
  never resolved by name first (realpath would have followed a user's link to /etc and
  made root create and prune there). Every directory walked must belong to root or the
  effective user and be writable by no one else, unless it is sticky (like /tmp, where
  others cannot rename what is not theirs): whoever could rename an entry of an ancestor
  could swap in a directory of theirs between any check and any use, so such a location
  is refused outright, for every user, not only root. A symbolic link met on the way is
  read (lstat, readlink relative to the fd) and its target walked the same way; it is
  honoured only because the directory holding it passed these checks, and in a sticky
  directory only if the link itself belongs to root or the effective user (anyone else
  could point it anywhere). A link swapped in between the lstat and the open makes the
  open fail (ELOOP, or ENOTDIR under O_DIRECTORY): refused too. `..` goes back to the
  directory walked before, never to a name. The cache directory itself must belong to the
  effective user and be writable by no one else; one of root's, left in a user's home by
  `sudo -E`, is skipped without a warning (unusable, but nobody could abuse it).
- Creation: at most the cache base (XDG_CACHE_HOME or ~/.cache) and ebpf-run in it, by
  the names the configured path gives them, mode 0700, each only inside an existing
  directory the effective user owns: HOME=/nonexistent creates nothing, nor does a user
  in someone else's /tmp. A link's target is never created (a dangling ~/.cache -> /etc/x
  makes nothing). A directory that cannot be made (a read-only home) means no cache,
  silently: nothing is unsafe about it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from typing import Callable, Iterator, List, Optional, Tuple

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


_MAX_LINKS = 40  # the kernel's own limit on links followed in one lookup


def open_output_dir(path: str) -> int:
    """`render --out DIR`: DIR opened (and any of it missing made, 0755) by the walk the cache
    location gets, so root writes into no directory a link or another user chose (a link
    planted as /tmp/out -> /etc). It may be a shared sticky directory (/tmp itself): files
    are renamed over their names there, which the kernel refuses for another user's file.
    Relative paths start at the current directory. _Refused and _Missing say why not."""
    try:
        return _open_location(os.path.abspath(path), makeable=None, mode=0o755,
                              last_check=_check_ancestor)
    except _Missing as e:
        raise _Refused(f"{e}: cannot be made (missing, in a directory that is not ours)") \
            from None


Refused = _Refused  # what open_output_dir raises, for its callers


def replace_file(dir_fd: int, name: str, data: bytes) -> None:
    """Write `name` in the open directory as a new file renamed over the name: whatever
    the name held (a link someone planted to /etc/passwd, a hard link, a FIFO) is
    replaced, never written through, and a reader sees the old file or the whole new one."""
    tmp = f".{name}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def write_output(path: str, data: bytes) -> None:
    """A file root writes where a user asked (`--folded FILE`): its directory walked as
    open_output_dir does, the file replaced as replace_file does. OSError or Refused."""
    dir_fd = open_output_dir(os.path.dirname(os.path.abspath(path)))
    try:
        replace_file(dir_fd, os.path.basename(path), data)
    finally:
        os.close(dir_fd)


def _open_location(path: str, makeable: Optional[int] = 2, mode: int = 0o700,
                   last_check: Optional[Callable[[int, str], None]] = None) -> int:
    """Open the cache directory `path` as the module docstring says; return its fd.

    `todo` holds the names still to walk, last first, each with whether it may be made:
    only the configured path's last `makeable` (for the cache two: the cache base, e.g.
    ~/.cache, and ebpf-run; None: any), never a name read from a link. `walked` holds the
    open fd of every directory walked so far, each already checked, so `..` and an
    absolute link need no name. The last directory is checked by `last_check` (default:
    the cache's own rule, _check_own)."""
    final = last_check or _check_own
    given = [n for n in path.split("/") if n not in ("", ".")]
    first_made = 0 if makeable is None else len(given) - makeable
    todo = [(n, i >= first_made) for i, n in enumerate(given)][::-1]
    walked = [(os.open("/", _SEARCH), "/")]
    try:
        _check_ancestor(*walked[0])
        links = 0
        while todo:
            name, may_make = todo.pop()
            fd, here = walked[-1]
            if name == "..":
                if len(walked) > 1:
                    os.close(walked.pop()[0])
                continue
            target = _link_target(fd, name, os.path.join(here, name))
            if target is not None:
                links += 1
                if links > _MAX_LINKS:
                    raise _Refused(f"{path} goes through more than {_MAX_LINKS} links")
                todo += [(n, False) for n in target.split("/")[::-1] if n not in ("", ".")]
                while target.startswith("/") and len(walked) > 1:
                    os.close(walked.pop()[0])
                continue
            walked.append(_step(fd, name, os.path.join(here, name), may_make, mode,
                                final if not todo else None))
        return walked.pop()[0]
    finally:
        for fd, _ in walked:
            os.close(fd)


def _step(dir_fd: int, name: str, path: str, may_make: bool, mode: int,
          last_check: Optional[Callable[[int, str], None]]) -> Tuple[int, str]:
    """Open (or make) one directory of the walk and check it on its fd: with `last_check`
    if it is the last one."""
    flags = _SEARCH if last_check is None else _LIST
    fd = _open_or_make(dir_fd, name, flags, path, mode) if may_make else \
        _openat(dir_fd, name, flags, path)
    try:
        (last_check or _check_ancestor)(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd, path


def _link_target(dir_fd: int, name: str, path: str) -> Optional[str]:
    """What `name` in the (checked) directory `dir_fd` links to, or None if it is no link.
    In a sticky directory others can write, a link is theirs to point anywhere unless it
    belongs to root or the effective user."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None  # the open says it is missing, or makes it
    except OSError as e:
        raise _Refused(f"{path}: {e.strerror}") from None
    if not stat.S_ISLNK(st.st_mode):
        return None
    if os.fstat(dir_fd).st_mode & _OTHERS_WRITE and st.st_uid not in (0, os.geteuid()):
        raise _Refused(f"{path} is a symbolic link of uid {st.st_uid} in a directory "
                       "others can write, who could point it anywhere")
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as e:
        raise _Refused(f"{path}: {e.strerror}") from None


def _openat(dir_fd: int, name: str, flags: int, path: str) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _Missing(path) from None
    except OSError as e:
        # O_NOFOLLOW on a link gives ELOOP, or ENOTDIR along with O_DIRECTORY: refused
        # either way; lstat only words the message.
        if e.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(dir_fd, name):
            raise _Refused(f"{path} is a symbolic link (swapped in during the walk?)")\
                from None
        raise _Refused(f"{path}: {e.strerror}") from None


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_or_make(dir_fd: int, name: str, flags: int, path: str, mode: int) -> int:
    try:
        return _openat(dir_fd, name, flags, path)
    except _Missing:
        if os.fstat(dir_fd).st_uid != os.geteuid():
            raise  # create only in a directory of our own: never /nonexistent/.cache
    try:
        os.mkdir(name, mode, dir_fd=dir_fd)
    except FileExistsError:
        pass  # made meanwhile: opened and checked below like any other
    except OSError:
        raise _Missing(path) from None  # e.g. a read-only home: unusable, nothing unsafe
    return _openat(dir_fd, name, flags, path)


def _check_ancestor(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if st.st_uid not in (0, os.geteuid()):
        raise _Refused(f"{path} belongs to uid {st.st_uid}, who could swap what is in it "
                       "for files of their own")
    if st.st_mode & _OTHERS_WRITE and not st.st_mode & stat.S_ISVTX:
        raise _Refused(f"{path} is writable by group or others (mode "
                       f"{stat.S_IMODE(st.st_mode):o}), who could swap what is in it")


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
