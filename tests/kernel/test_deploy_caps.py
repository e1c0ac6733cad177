"""The systemd unit's capability set is enough, and each of its parts is needed: ebpf-run
run as root with only the capabilities of deploy/systemd/ebpf-run.service's
CapabilityBoundingSet= (setpriv cuts root's bounding set, which is what systemd does)
compiles into an empty cache, attaches, receives events and symbolizes kernel stacks;
without CAP_PERFMON the kernel refuses the programs.

What this cannot show: the unit's other settings (ProtectSystem= and the rest need systemd
as PID 1, which this project's machines do not have), and kernels before 5.8, which have no
CAP_BPF or CAP_PERFMON (docs/deploy.md says to use CAP_SYS_ADMIN there)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import List

import pytest
from harness import READY_TIMEOUT, ROOT, SPECS, Run, trigger_exec

UNIT = ROOT / "deploy" / "systemd" / "ebpf-run.service"


def unit_caps() -> List[str]:
    (line,) = [ln for ln in UNIT.read_text().splitlines()
               if ln.startswith("CapabilityBoundingSet=")]
    return line.split("=", 1)[1].split()


def setpriv(caps: List[str]) -> List[str]:
    path = shutil.which("setpriv")
    assert path, "setpriv (util-linux) is missing"
    keep = ",".join("+" + c[len("CAP_"):].lower() for c in caps)
    return [path, "--bounding-set", f"-all,{keep}", "--"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> dict:
    """An empty cache of the test's own: the runs compile under the reduced set."""
    base = tmp_path_factory.mktemp("cache")
    base.chmod(0o700)
    return {"XDG_CACHE_HOME": str(base)}


def test_the_units_capabilities_attach_and_receive_events(cache):
    assert unit_caps() == ["CAP_BPF", "CAP_PERFMON", "CAP_SYSLOG", "CAP_SYS_PTRACE"]
    with Run(str(SPECS / "tools" / "execsnoop.yaml"), "--json", env=cache,
             prefix=setpriv(unit_caps())) as run:
        run.wait_ready()
        pid = trigger_exec()
        run.wait_output(lambda out: any(f'"pid": {pid},' in ln for ln in out),
                        what=f"the exec of pid {pid}")
        assert run.stop() == 0
    assert any(Path(cache["XDG_CACHE_HOME"], "ebpf-run").iterdir())


@pytest.mark.host_only  # 6.1 refused the tracepoint with EACCES under this set (docs/deploy.md)
def test_the_units_capabilities_symbolize_kernel_stacks(cache):
    with Run(str(SPECS / "tools" / "stackcount.yaml"), "--duration", "2", env=cache,
             prefix=setpriv(unit_caps())) as run:
        run.wait_ready()
        assert run.finish(READY_TIMEOUT) == 0
    frames = [ln.strip() for ln in run.out if ln.startswith("    ")]
    assert any(re.fullmatch(r"try_to_wake_up\+\d+", f) for f in frames), run.out[:40]
    # CAP_SYSLOG: no kernel text address left bare (without it, every frame is one)
    assert not [f for f in frames if re.fullmatch(r"0xffffffff8[0-9a-f]{7}", f)]


def test_without_cap_perfmon_the_kernel_refuses_the_programs(cache):
    caps = [c for c in unit_caps() if c != "CAP_PERFMON"]
    with Run(str(SPECS / "tools" / "execsnoop.yaml"), env=cache, prefix=setpriv(caps)) as run:
        assert run.finish(READY_TIMEOUT) == 3  # a compile, then the refusal
    assert "EPERM" in "\n".join(run.err), run.err
