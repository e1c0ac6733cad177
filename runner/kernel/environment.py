"""What the machine must offer before anything loads: kernel headers and tracefs.

Shared with `ebpf-run doctor`, which reports the same facts as a table. (The privilege
check stays in bcc.py, beside the BCC import, where the CLI's tests replace it.)
"""

from __future__ import annotations

import os

from runner.errors import EnvironmentProblem

TRACEFS = "/sys/kernel/tracing"
HEADERS_FIX = ("Install the headers of the running kernel (apt-get install "
               "linux-headers-$(uname -r)) or run ./scripts/setup, which links the nearest "
               "available ones; `ebpf-run doctor` shows what is found.")


def check_headers() -> None:
    release = os.uname().release
    if os.environ.get("BCC_KERNEL_SOURCE"):
        return
    if not os.path.exists(f"/lib/modules/{release}/build") and not os.path.exists(
            "/sys/kernel/kheaders.tar.xz"):
        raise EnvironmentProblem(f"no kernel headers for {release}. {HEADERS_FIX}")


def tracefs_mounted() -> bool:
    return os.path.exists(f"{TRACEFS}/events")


def kprobes_available() -> bool:
    return os.path.exists(f"{TRACEFS}/kprobe_events")


EVENT_SOURCES = "/sys/bus/event_source/devices"


def hardware_counters() -> bool:
    """Whether a CPU performance monitoring unit is registered (x86's `cpu`, hybrid
    `cpu_core`/`cpu_atom`, arm64's `armv8_*`): without one, hardware perf events cannot
    be opened (most virtual machines)."""
    try:
        names = os.listdir(EVENT_SOURCES)
    except OSError:
        return False
    return any(n == "cpu" or n.startswith(("cpu_", "armv")) for n in names)


def tracepoint_exists(target: str) -> bool:
    """`category:name` as listed under tracefs."""
    cat, _, name = target.partition(":")
    return os.path.isdir(f"{TRACEFS}/events/{cat}/{name}")


def kernel_btf() -> bool:
    return os.path.exists("/sys/kernel/btf/vmlinux")
