"""Run a case's trigger and take its captures from what it printed."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import selectors
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Dict, Optional

from runner.model.tests import Trigger
from runner.support.regexes import RegexTimeout, search
from runner.testing.containment import Box

# What is kept of a trigger's stdout for its captures; the rest is counted. A trigger that
# prints gigabytes would otherwise be held whole in memory.
KEEP_OUTPUT = 1 << 20
CHUNK = 1 << 16


@dataclass(frozen=True)
class TriggerResult:
    captures: Dict[str, Any]
    problem: Optional[str]  # why the case cannot be judged: a timeout, a capture not found
    dropped: int = 0  # bytes of stdout beyond KEEP_OUTPUT, counted and not kept


class Output:
    """The first KEEP_OUTPUT bytes of a stream, and how many more there were."""

    def __init__(self, keep: Optional[int] = None):
        self.keep = KEEP_OUTPUT if keep is None else keep
        self.data = bytearray()
        self.dropped = 0

    def add(self, chunk: bytes) -> None:
        room = self.keep - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


def run_trigger(t: Trigger, box: Box) -> TriggerResult:
    """The trigger ends when its process does; what it started lives on in `box` until the
    case ends (the caller kills it then)."""
    try:
        # A session of its own, in the case's cgroup, as its uid.
        proc = subprocess.Popen(t.argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL, cwd="/", env=_env(t.user),
                                start_new_session=True, preexec_fn=box.enter(t.user))
    except (OSError, subprocess.SubprocessError) as e:
        return TriggerResult({}, f"trigger could not start as uid {t.user}: {e}")
    box.started(proc.pid)
    out = Output()
    assert proc.stdout is not None
    try:
        ended = _collect(proc, proc.stdout.fileno(), t.timeout, out)
    finally:
        if proc.poll() is None:
            box.kill()  # on a timeout: the whole group and cgroup go, children included
            proc.wait()
        # Open until the case ends: a daemon still printing blocks once the pipe is full
        # rather than die of SIGPIPE in the middle of the case.
        box.hold(proc.stdout)
    if not ended:
        return TriggerResult({}, f"trigger did not end within {t.timeout:g} s", out.dropped)
    return take_captures(t, out.text(), out.dropped)


def _collect(proc: subprocess.Popen[bytes], fd: int, timeout: float, out: Output) -> bool:
    """Read stdout into `out` until the process exits (True) or the timeout (False). A
    background process holding the pipe does not keep the trigger going: once the trigger's
    own process has exited, what is already in the pipe is read and the rest is not."""
    os.set_blocking(fd, False)
    end = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        open_ = True
        while True:
            exited = proc.poll() is not None
            if exited or not open_:
                if open_:
                    _drain(fd, out)
                return exited or _wait(proc, end)
            left = end - time.monotonic()
            if left <= 0:
                return False
            if sel.select(min(left, 0.05)):
                open_ = _read(fd, out)


def _read(fd: int, out: Output) -> bool:
    """One read; False at end of file."""
    with contextlib.suppress(BlockingIOError):
        chunk = os.read(fd, CHUNK)
        out.add(chunk)
        return bool(chunk)
    return True


def _drain(fd: int, out: Output) -> None:
    """What is in the pipe now, without waiting for more."""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, CHUNK):
            out.add(chunk)


def _wait(proc: subprocess.Popen[bytes], end: float) -> bool:
    try:
        proc.wait(max(0.0, end - time.monotonic()))
        return True
    except subprocess.TimeoutExpired:
        return False


def take_captures(t: Trigger, stdout: str, dropped: int = 0) -> TriggerResult:
    captures: Dict[str, Any] = {}
    for name, pattern in t.captures:
        try:
            m = search(pattern, stdout, re.MULTILINE)
        except RegexTimeout as e:
            return TriggerResult(captures, f"capture {name}: {e} on the trigger's stdout",
                                 dropped)
        if m is None:
            more = f" ({dropped} more bytes were not kept)" if dropped else ""
            return TriggerResult(captures, f"capture {name}: /{pattern}/ found nothing in the "
                                           f"trigger's stdout {stdout[:200]!r}{more}", dropped)
        captures[name] = _value(m.group(1))
    return TriggerResult(captures, None, dropped)


def _value(text: str) -> Any:
    """A pid or a uid compares with the record's number; anything else stays text, and so
    does a number too long for int() (Python refuses more than 4300 digits), which no
    record's number can equal anyway."""
    if re.fullmatch(r"-?[0-9]+", text):
        with contextlib.suppress(ValueError):
            return int(text)
    return text


def _env(uid: Optional[int]) -> Dict[str, str]:
    """A small fixed environment: the trigger's output should not depend on the caller's
    (a PATH search adds an execve per directory tried). HOME is the uid's own."""
    try:
        home = pwd.getpwuid(uid if uid is not None else os.getuid()).pw_dir
    except KeyError:
        home = "/"
    return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8", "HOME": home}
