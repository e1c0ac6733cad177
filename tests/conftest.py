"""Shared test setup: the `kernel` tier and a harness that runs ebpf-run for real.

Kernel tests load real programs into the running kernel. Where there is no root
or no BCC they skip with the reason, except under CI (CI=true): there a kernel
test that cannot run fails, so a broken setup can never pass as "skipped".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def _kernel_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "kernel tests need root"
    try:
        import bcc  # noqa: F401
    except ImportError:
        return "kernel tests need BCC (python3-bpfcc); run ./scripts/setup"
    if not os.path.exists("/sys/kernel/tracing/events"):
        return "kernel tests need tracefs mounted at /sys/kernel/tracing; run ./scripts/setup"
    return None


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if not item.get_closest_marker("kernel"):
        return
    reason = _kernel_unavailable()
    if reason is None:
        return
    if _in_ci():
        pytest.fail(f"CI is set and this kernel test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)
