"""Run a case's trigger and take its captures from what it printed."""

from __future__ import annotations

import os
import re
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
        done = subprocess.run(t.argv, capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, timeout=t.timeout, cwd="/",
                              env=_env(), check=False, **kwargs)
    except subprocess.TimeoutExpired:
        return TriggerResult({}, f"trigger did not end within {t.timeout:g} s")
    except OSError as e:
        return TriggerResult({}, f"trigger could not start: {e}")
    return take_captures(t, done.stdout)


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
