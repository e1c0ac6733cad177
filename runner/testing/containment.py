"""Keep what a case's trigger starts inside the case: a cgroup v2 of its own (created for the
case and removed after), and a process group of its own, both killed at the end of the case.

A process group alone does not hold a daemon: `setsid` and a double fork leave it, and the
daemon would outlive the test. A cgroup holds every descendant whatever it does with its
session, and the kernel's `cgroup.kill` (5.14+) kills them all at once; on older kernels the
members listed in `cgroup.procs` are killed until none is left. Where no cgroup v2 is
mounted, or it is not writable (not root, a read-only container), the process group is all
there is: `cgroup_problem()` says why, and `ebpf-run test` prints it once.

The trigger enters its cgroup and drops to its uid in the forked child before exec (a
`preexec_fn`), so neither an extra exec (which a spec counting execs would see) nor a moment
outside the cgroup exists. It only writes to an open descriptor and calls set*id: nothing
there takes a lock another thread could hold.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from typing import IO, Callable, List, Optional

from runner.support.cgroups import v2_mount

KILL_WAIT = 5.0  # seconds for the killed members to be gone before the cgroup is removed
KILL_ROUNDS = 100  # without cgroup.kill: a member forking while killed needs another round
POLL = 0.01
KILL_FILE = "cgroup.kill"  # 5.14+
PREFIX = "ebpf-run-test."  # then the pid of the `ebpf-run test` that made it, and a serial
_serial = itertools.count()


def cgroup2_root() -> Optional[str]:
    """Where cgroup v2 is mounted: /sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid."""
    mount = v2_mount()
    return mount.point if mount is not None else None


def cgroup_problem() -> Optional[str]:
    """Why triggers cannot get a cgroup here (None when they can)."""
    try:
        box = Box.open()
    except OSError as e:  # pragma: no cover - only where /proc is missing
        return str(e)
    try:
        return box.problem
    finally:
        box.close()


class Box:
    """One case's container: a cgroup (when possible) and the process groups started in it."""

    def __init__(self, path: Optional[str], problem: Optional[str]):
        self.path = path  # the case's cgroup directory; None: process groups only
        self.problem = problem  # why there is no cgroup
        self._procs_fd: Optional[int] = None
        self._groups: List[int] = []
        self._held: List[IO[bytes]] = []
        if path is not None:
            self._procs_fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)

    @classmethod
    def open(cls) -> Box:
        root = cgroup2_root()
        if root is None:
            return cls(None, "no cgroup v2 is mounted")
        _sweep(root)
        path = os.path.join(root, f"{PREFIX}{os.getpid()}.{next(_serial)}")
        try:
            os.mkdir(path)
        except OSError as e:
            return cls(None, f"cannot make a cgroup under {root}: {e.strerror}")
        try:
            return cls(path, None)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            return cls(None, f"cannot use a cgroup under {root}: {e.strerror}")

    def enter(self, uid: Optional[int]) -> Callable[[], None]:
        """What the trigger's child runs before exec: join the cgroup, then become uid (its
        own group, no supplementary groups left over from root)."""
        fd = self._procs_fd

        def run() -> None:
            if fd is not None:
                os.write(fd, b"0")  # "0": the writing process itself
            if uid is not None:
                _become(uid)
        return run

    def started(self, pgid: int) -> None:
        self._groups.append(pgid)

    def hold(self, pipe: IO[bytes]) -> None:
        """Closed at the end of the case, after what could still write to it is killed."""
        self._held.append(pipe)

    def kill(self) -> None:
        """Kill everything the triggers started; wait (bounded) until it is gone."""
        for pgid in self._groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        if self.path is not None:
            _kill_cgroup(self.path)
        end = time.monotonic() + KILL_WAIT
        while any(_exists(os.killpg, g) for g in self._groups) and time.monotonic() < end:
            time.sleep(POLL)

    def members(self) -> List[int]:
        """The pids in the cgroup (empty without one)."""
        return _procs(self.path) if self.path is not None else []

    def close(self) -> None:
        self.kill()
        for pipe in self._held:
            pipe.close()
        self._held = []
        if self._procs_fd is not None:
            os.close(self._procs_fd)
            self._procs_fd = None
        if self.path is not None:
            _remove(self.path)
            self.path = None

    def __enter__(self) -> Box:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _sweep(root: str) -> None:
    """Cases of an `ebpf-run test` that was killed (SIGKILL, SIGTERM) left their cgroups,
    with what their triggers started: kill and remove them."""
    with contextlib.suppress(OSError):
        for name in os.listdir(root):
            pid = name[len(PREFIX):].split(".")[0]
            if name.startswith(PREFIX) and pid.isdigit() and not _exists(os.kill, int(pid)):
                _kill_cgroup(os.path.join(root, name))
                _remove(os.path.join(root, name))


def _exists(send: Callable[[int, int], None], ident: int) -> bool:
    """A process (send=os.kill) or process group (os.killpg) by signal 0."""
    try:
        send(ident, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: there, someone else's
        return True


def _become(uid: int) -> None:
    if uid == os.geteuid() != 0:
        return  # already that user: an unprivileged caller (the unit tests as a user)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _kill_cgroup(path: str) -> None:
    kill_file = os.path.join(path, KILL_FILE)
    if os.path.exists(kill_file):
        with contextlib.suppress(OSError), open(kill_file, "w") as f:
            f.write("1")
    else:
        for _ in range(KILL_ROUNDS):
            pids = _procs(path)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + KILL_WAIT
    while _populated(path) and time.monotonic() < end:
        time.sleep(POLL)


def _procs(path: str) -> List[int]:
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except OSError:
        return []


def _populated(path: str) -> bool:
    try:
        with open(os.path.join(path, "cgroup.events")) as f:
            return any(line.split() == ["populated", "1"] for line in f)
    except OSError:
        return False


def _remove(path: str) -> None:
    """rmdir, retried while the last killed member is still leaving (EBUSY)."""
    end = time.monotonic() + KILL_WAIT
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= end:
                return  # left behind, empty or not: nothing more to do without a leak
            time.sleep(POLL)
