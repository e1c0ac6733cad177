"""Who the bench measures: hand-written BCC (ring and perf buffer), ebpf-run (installed, or
a source tree), and bpftrace (peers.py), each as a Variant with its ready line and the
parser of its summary."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import List, Optional, Tuple

import peers
from harness import BENCH, ROOT, Variant


def parse_bcc(err: str) -> Optional[Tuple[int, int]]:
    m = re.search(r"bcc-getppid: summary: (\d+) received; (\d+) lost", err)
    return (int(m.group(1)), int(m.group(2))) if m else None


def parse_ebpf_run(err: str) -> Optional[Tuple[int, int]]:
    m = re.search(r"^ebpf-run: summary: .*$", err, re.M)
    if not m:
        return None
    got = re.search(r"events: (\d+) received", m.group(0))
    lost = re.search(r"events: (\d+) lost", m.group(0))
    return (int(got.group(1)) if got else 0, int(lost.group(1)) if lost else 0)


SYSTEM_PYTHON = "/usr/bin/python3"  # where Debian's python3-bpfcc lives


def bcc_variant() -> Variant:
    # Run as the book runs its programs (#!/usr/bin/python3): the distribution's Python,
    # without the venv's site processing, which ebpf-run, installed in its venv, pays.
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    return Variant("bcc", (python, str(BENCH / "bcc_getppid.py")), "bcc-getppid: ready",
                   parse_bcc)


def ebpf_run_variant(name: str, tree: Optional[Path], spec_file: str = "getppid.yaml",
                     env: Tuple[Tuple[str, str], ...] = ()) -> Variant:
    spec = str(BENCH / spec_file)
    if tree is None:  # the installed command, as a user runs it
        return Variant(name, (str(ROOT / ".venv" / "bin" / "ebpf-run"), spec),
                       "ebpf-run: ready", parse_ebpf_run, env=env)
    # Another source tree (a prototype copy), run from inside it: `python -m runner` then
    # imports that tree's runner package, not the installed one.
    return Variant(name, (sys.executable, "-m", "runner", spec), "ebpf-run: ready",
                   parse_ebpf_run, tree, env)


def peer_variants(tree: Optional[Path]) -> List[Variant]:
    """The perf-buffer pair and bpftrace: ladder rows, no full-speed rows."""
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    out = [Variant("bcc-perf", (python, str(BENCH / "bcc_getppid_perf.py")),
                   "bcc-getppid: ready", parse_bcc, peer=True),
           replace(ebpf_run_variant("ebpf-run-perf", tree, "getppid_perf.yaml"), peer=True)]
    if peers.has_bpftrace():
        out.append(Variant("bpftrace", peers.bpftrace_argv(), "", peers.parse_bpftrace,
                           stdout_ready=b"ready\n", peer=True))
    return out
