"""Every attach kind the checker makes has a hook; an unknown kind is a loud error."""

from __future__ import annotations

import dataclasses

import pytest

from runner.errors import KernelError
from runner.kernel.attach import HOOKS, hook_for
from runner.kinds.attach import CANDIDATE_KINDS
from runner.pipeline import check

from .util import ROOT

SPEC_WITH_EVERY_KIND = """\
name: every-kind
probes:
  p:
    attach:
      - kprobe: do_nanosleep
      - kretprobe: do_nanosleep
      - fentry: do_nanosleep
      - tracepoint: "syscalls:sys_enter_nanosleep"
      - raw_tracepoint: sys_enter
      - uprobe: "/bin/true:main"
      - uretprobe: "/bin/true:main"
      - syscall: getppid
      - profile: "hz:99"
      - software: "page-faults:10 pid=1"
      - hardware: cycles
    do: [{print: "hi"}]
"""


def candidates(spec):
    return [c for p in spec.probes for c in p.candidates]


def test_every_kind_the_checker_makes_has_a_hook(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC_WITH_EVERY_KIND)
    specs = [check(str(path))] + [check(str(p)) for p in sorted((ROOT / "specs").glob("*.yaml"))]
    kinds = {c.kind for s in specs for c in candidates(s)}
    assert kinds == set(HOOKS), kinds ^ set(HOOKS)
    # and the checker's table of candidate kinds is the kernel's table of hooks
    assert set(CANDIDATE_KINDS.names()) == set(HOOKS)
    for s in specs:
        for c in candidates(s):
            assert hook_for(c) is HOOKS[c.kind]


def test_an_unknown_kind_is_an_internal_error(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC_WITH_EVERY_KIND)
    cand = dataclasses.replace(candidates(check(str(path)))[0], kind="kprobe_multi")
    with pytest.raises(KernelError, match=r"internal error: unknown attach hook "
                                          r"'kprobe_multi' .*; known: kprobe, kretprobe"):
        hook_for(cand)
