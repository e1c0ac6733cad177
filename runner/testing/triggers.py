"""Run a case's trigger and take its captures from what it printed."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, Optional

from runner.model.tests import Trigger


@dataclass(frozen=True)
class TriggerResult:
    captures: Dict[str, Any]
    problem: Optional[str]  # why the case cannot be judged: a timeout, a capture not found


def run_trigger(t: Trigger) -> TriggerResult:
    kwargs: Dict[str, Any] = {}
    if t.user is not None:
        # The uid's own group, and no supplementary groups left over from root.
        kwargs = {"user": t.user, "group": t.user, "extra_groups": []}
    try:
        # A session of its own: on a timeout the whole group goes, children included (a
        # grandchild holding the stdout pipe would otherwise keep the read waiting).
        proc = subprocess.Popen(t.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, cwd="/", env=_env(),
                                start_new_session=True, **kwargs)
    except (OSError, subprocess.SubprocessError) as e:
        return TriggerResult({}, f"trigger could not start: {e}")
    try:
        out, _ = proc.communicate(timeout=t.timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return TriggerResult({}, f"trigger did not end within {t.timeout:g} s")
    return take_captures(t, out.decode("utf-8", "replace"))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # something left the group and holds the pipe
        proc.kill()
        proc.wait()


def take_captures(t: Trigger, stdout: str) -> TriggerResult:
    captures: Dict[str, Any] = {}
    for name, pattern in t.captures:
        m = re.search(pattern, stdout, re.MULTILINE)
        if m is None:
            return TriggerResult(captures, f"capture {name}: /{pattern}/ found nothing in the "
                                           f"trigger's stdout {stdout[:200]!r}")
        text = m.group(1)
        # A pid or a uid compares with the record's number; anything else stays text.
        captures[name] = int(text) if re.fullmatch(r"-?\d+", text) else text
    return TriggerResult(captures, None)


def _env() -> Dict[str, str]:
    """A small fixed environment: the trigger's output should not depend on the caller's
    (a PATH search adds an execve per directory tried)."""
    return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
            "HOME": os.environ.get("HOME", "/")}
