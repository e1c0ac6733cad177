"""The run command's options, in a module of their own: the CLI imports them before the
run starts, and nothing heavy should load before the signal handlers are in place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Options:
    json: bool = False
    duration: Optional[float] = None
    count: Optional[int] = None
    params: Tuple[Tuple[str, str], ...] = ()  # --set NAME=VALUE, as typed
    metrics: Optional[str] = None  # HOST:PORT to serve /metrics on
    metrics_web_config: Optional[str] = None  # TLS and basic auth for it (web_config.py)
    # How ring buffers are read: "mmap" in place (x86-64), or libbpf's "callback" reader,
    # which the tests ask for with EBPF_RUN_RING_READER=callback (runner/cli/main.py).
    ring_reader: str = "mmap"
