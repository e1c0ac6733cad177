"""The slower paths, chosen by hand.

Each fast path has a fallback that other machines take on their own (a ring or perf buffer
read through its library's callbacks where the in-place reader's memory ordering does not
hold, a tracepoint attached by BCC where the kernel has no BPF links). These environment
variables make ebpf-run take the fallback here, so the tests cover both paths and a user
can rule the fast one out:

    EBPF_RUN_RING_READER=callback    ring buffers through libbpf's callback reader
    EBPF_RUN_PERF_READER=callback    perf buffers through BCC's reader
    EBPF_RUN_TRACEPOINT_ATTACH=bcc   tracepoints attached by BCC, not through BPF links
    EBPF_RUN_SYSCALL_ATTACH=each     a probe on several syscalls attached to each one's
                                     tracepoint, not once to raw sys_enter/sys_exit

They are read once, by the command line (runner/cli/main.py), into Options; the stages
below are handed a Fallbacks and read no environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class Fallbacks:
    ring_callback: bool = False
    perf_callback: bool = False
    tracepoint_bcc: bool = False
    syscalls_each: bool = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] = os.environ) -> Fallbacks:
        return cls(env.get("EBPF_RUN_RING_READER") == "callback",
                   env.get("EBPF_RUN_PERF_READER") == "callback",
                   env.get("EBPF_RUN_TRACEPOINT_ATTACH") == "bcc",
                   env.get("EBPF_RUN_SYSCALL_ATTACH") == "each")


FAST = Fallbacks()  # nothing forced: every fast path where it can run
