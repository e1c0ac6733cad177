"""`ebpf-run doctor`: what this machine offers ebpf-run, checked rather than guessed.

Attach kinds are found by attaching a do-nothing program with each method and
detaching it at once. Exit 0 when the shipped specs can run here, 3 otherwise.
"""

from __future__ import annotations

import gzip
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional

from runner.errors import EnvironmentProblem
from runner.kernel import bcc as kernel
from runner.kinds.attach import CANDIDATE_KINDS, CandidateKind

SETUP = "run ./scripts/setup (as root)"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | FAIL | info | no (an optional feature is missing)
    detail: str
    fix: str = ""


def doctor() -> int:
    checks = run_checks()
    print(table(checks))
    needed = {"privileges", "bcc", "kernel headers", "tracefs"} | {
        k.name for k in _doctored() if k.doctor and k.doctor.required and k.name != "tracepoint"}
    # A syscall probe attaches by kprobe or, failing that, by its tracepoint.
    syscall_ok = any(c.name in ("kprobe", "tracepoint") and c.status == "ok" for c in checks)
    ready = syscall_ok and not any(c.name in needed and c.status == "FAIL" for c in checks)
    print("\nthe shipped specs can run here" if ready else
          "\nthe shipped specs cannot run here: fix the FAIL rows above")
    return 0 if ready else 3


def run_checks() -> List[Check]:
    checks = [privileges()]
    bcc_check = bcc_module()
    checks += [bcc_check, headers(), tracefs(), btf()]
    config = kernel_config()
    checks.append(config_check(config))
    if bcc_check.status == "ok" and checks[0].status == "ok" and kernel.tracefs_mounted():
        checks += attach_kinds(config)
    else:
        for kind in _doctored():
            checks.append(Check(kind.name, "FAIL", "not tried: needs root, BCC and tracefs",
                                SETUP))
    return checks


def privileges() -> Check:
    try:
        kernel.check_privileges()
    except EnvironmentProblem as e:
        return Check("privileges", "FAIL", str(e), "run as root (sudo)")
    who = "root" if os.geteuid() == 0 else "CAP_BPF and CAP_PERFMON"
    return Check("privileges", "ok", who)


def bcc_module() -> Check:
    try:
        version, path = kernel.bcc_info()
    except EnvironmentProblem as e:
        return Check("bcc", "FAIL", str(e).split(".")[0],
                     "apt-get install python3-bpfcc; use a venv with --system-site-packages")
    if "site-packages" in path and "dist-packages" not in path:
        return Check("bcc", "warn", f"{version} from {path}: not the distribution's BCC",
                     "pip uninstall bcc; apt-get install python3-bpfcc")
    return Check("bcc", "ok", f"{version} from {path}")


def headers() -> Check:
    release = os.uname().release
    build = f"/lib/modules/{release}/build"
    if not os.path.exists(build):
        if os.path.exists("/sys/kernel/kheaders.tar.xz"):
            return Check("kernel headers", "ok", "from the kernel (CONFIG_IKHEADERS)")
        return Check("kernel headers", "FAIL", f"missing: no {build}",
                     f"apt-get install linux-headers-{release}, or {SETUP}")
    target = os.path.realpath(build)
    if release in target:
        return Check("kernel headers", "ok", f"matching: {target}")
    return Check("kernel headers", "warn",
                 f"nearest, not matching: {build} -> {target}. Fine for specs that use helpers "
                 "and syscall arguments (all of ebpf-run's actions); not for reading kernel "
                 "structs by field", f"apt-get install linux-headers-{release} where it exists")


def tracefs() -> Check:
    if kernel.tracefs_mounted():
        return Check("tracefs", "ok", f"mounted at {kernel.TRACEFS}")
    return Check("tracefs", "FAIL", f"not mounted at {kernel.TRACEFS}",
                 f"mount -t tracefs nodev {kernel.TRACEFS}")


def btf() -> Check:
    if os.path.exists("/sys/kernel/btf/vmlinux"):
        return Check("BTF", "ok", "/sys/kernel/btf/vmlinux")
    return Check("BTF", "warn", "no /sys/kernel/btf/vmlinux: fentry cannot work",
                 "a kernel built with CONFIG_DEBUG_INFO_BTF")


def kernel_config() -> Optional[Dict[str, str]]:
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            return dict(line.strip().split("=", 1) for line in f
                        if line.startswith("CONFIG_") and "=" in line)
    except OSError:
        return None


def config_check(config: Optional[Dict[str, str]]) -> Check:
    if config is None:
        return Check("/proc/config.gz", "info", "not readable: attach kinds are tried below")
    keys = ("CONFIG_BPF_SYSCALL", "CONFIG_KPROBES", "CONFIG_FTRACE_SYSCALLS",
            "CONFIG_DEBUG_INFO_BTF", "CONFIG_BPF_JIT")
    shown = ", ".join(f"{k[7:]}={config.get(k, 'unset')}" for k in keys)
    return Check("/proc/config.gz", "info", shown)


def attach_kinds(config: Optional[Dict[str, str]]) -> List[Check]:
    try:
        results = kernel.try_attach_kinds()
    except EnvironmentProblem as e:
        return [Check("attach kinds", "FAIL", str(e), SETUP)]
    except Exception as e:  # a compile failure here means BCC itself is unusable
        return [Check("attach kinds", "FAIL", f"BCC could not compile a probe: {e}",
                      "check the kernel headers row")]
    out = []
    for kind in _doctored():
        assert kind.doctor is not None
        ok, detail = results[kind.name]
        if not ok and kind.name == "kprobe" and config and config.get("CONFIG_KPROBES") != "y":
            detail = "CONFIG_KPROBES is not set (attach: " + detail + ")"
        if not ok:
            detail = "unavailable: " + detail
        status = "ok" if ok else ("FAIL" if kind.doctor.required else "no")
        out.append(Check(kind.name, status, detail, "" if ok else kind.doctor.fix))
    return out


def _doctored() -> List[CandidateKind]:
    """The attach kinds the doctor tries, from the registry."""
    return [k for k in CANDIDATE_KINDS.values() if k.doctor is not None]


def table(checks: List[Check]) -> str:
    w = max(len(c.name) for c in checks)
    lines = [f"{'check'.ljust(w)}  status  detail"]
    for c in checks:
        lines.append(f"{c.name.ljust(w)}  {c.status.ljust(6)}  {_short(c.detail)}")
        if c.fix and c.status in ("FAIL", "warn", "no"):
            lines.append(f"{''.ljust(w)}          fix: {c.fix}")
    return "\n".join(lines)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(doctor())
