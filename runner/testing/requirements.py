"""Kernel features a test case may require (`requires: [kprobes]`), checked against this
machine. A case whose feature is missing is skipped with the reason, never failed: the spec
is not wrong, the kernel lacks something (kprobes are off on the 6.18 test machine and on
in the 6.1 VM)."""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

from runner.kernel import environment
from runner.model.tests import FEATURES

PRESENT: Dict[str, Callable[[], bool]] = {
    "kprobes": environment.kprobes_available,
    "btf": environment.kernel_btf,
}
MISSING = {
    "kprobes": "kernel has no kprobes (CONFIG_KPROBES is off)",
    "btf": "kernel has no BTF (/sys/kernel/btf/vmlinux)",
}
assert set(PRESENT) == set(MISSING) == set(FEATURES)


def unmet(requires: Sequence[str]) -> Optional[str]:
    """Why the case cannot run here, or None when it can."""
    for feature in requires:
        if not PRESENT[feature]():
            return MISSING[feature]
    return None
