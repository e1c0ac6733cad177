"""The run command's options, in a module of their own: the CLI imports them before the
run starts, and nothing heavy should load before the signal handlers are in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from runner.support.fallbacks import FAST, Fallbacks


@dataclass(frozen=True)
class Options:
    json: bool = False
    duration: Optional[float] = None
    count: Optional[int] = None
    params: Tuple[Tuple[str, str], ...] = ()  # --set NAME=VALUE, as typed
    metrics: Optional[str] = None  # HOST:PORT to serve /metrics on
    metrics_web_config: Optional[str] = None  # TLS and basic auth for it (web_config.py)
    # The slower readers and attach, forced by hand (runner/support/fallbacks.py).
    fallbacks: Fallbacks = FAST
    folded: Optional[str] = None  # --folded FILE: stack aggregations as folded stacks
    flamegraph: Optional[str] = None  # --flamegraph FILE: the same as an SVG flame graph
