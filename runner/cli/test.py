"""`ebpf-run test SPEC...`: run every test case of every spec, one after another.

Cases run one at a time: they trigger the same hooks (every example counts execve), so two
at once would see each other's events. Every spec is checked before anything runs, so a
broken spec is a spec error (exit 1) rather than a failure in the middle. Exit 0 when all
cases pass (skips allowed), 1 when any fails, 3 when this machine cannot run them, 130
when interrupted (Ctrl-C).
"""

from __future__ import annotations

import shlex
import sys
from typing import List, Tuple

from runner.errors import Diagnostic, EnvironmentProblem, SpecError
from runner.model.spec import Spec
from runner.model.tests import TestCase
from runner.testing.containment import cgroup_problem
from runner.testing.report import Report
from runner.testing.requirements import unmet
from runner.testing.session import CaseResult, run_case


def test(paths: List[str], json: bool = False) -> int:
    specs = _load(paths)
    report = Report(sys.stdout, json)
    plan: List[Tuple[str, str, TestCase]] = []
    for path, spec in specs:
        if not spec.tests:
            report.case(path, spec.name, CaseResult("skip", 0.0, reason="the spec has no tests"))
        plan += [(path, f"{spec.name}:{case.name}", case) for case in spec.tests]
    to_run = [(p, label, case, unmet(case.requires)) for p, label, case in plan]
    if any(why is None for *_, why in to_run):
        check_environment()
        _announce([(label, case) for _, label, case, why in to_run if why is None])
    try:
        for path, label, case, why in to_run:
            if why is not None:
                report.case(path, label, CaseResult("skip", 0.0, reason=why))
            else:
                report.case(path, label, run_case(path, case))
    except KeyboardInterrupt:
        # Not the run command's quiet 0: an interrupted test run proved nothing.
        report.summary()
        print("ebpf-run: test: interrupted", file=sys.stderr)
        return 130
    report.summary()
    return 1 if report.count("fail") else 0


def _announce(cases: List[Tuple[str, TestCase]]) -> None:
    """On stderr, before anything runs: the triggers that run as root, and what holds what
    the triggers start when no cgroup can (a daemon leaving its process group survives)."""
    for label, case in cases:
        if case.trigger.user == 0:
            print(f"ebpf-run: test: {label} runs as root: {shlex.join(case.trigger.argv)}",
                  file=sys.stderr)
    problem = cgroup_problem()
    if problem is not None:
        print(f"ebpf-run: test: {problem}: triggers are contained by their process group "
              f"only, and what leaves it (setsid) outlives its case", file=sys.stderr)


def _load(paths: List[str]) -> List[Tuple[str, Spec]]:
    """Every spec checked; all their problems raised together."""
    from runner.pipeline import check

    specs: List[Tuple[str, Spec]] = []
    diags: List[Diagnostic] = []
    for path in paths:
        try:
            specs.append((path, check(path)))
        except SpecError as e:
            diags += e.diagnostics
    if diags:
        raise SpecError(diags)
    return specs


def check_environment() -> None:
    """What every run needs, asked once up front: a clear exit 3 instead of every case
    failing with the same kernel error."""
    from runner.kernel import bcc, environment

    bcc.check_privileges()
    bcc.import_bcc()
    if not environment.tracefs_mounted():
        raise EnvironmentProblem(f"tracefs is not mounted at {environment.TRACEFS} (mount -t "
                                 f"tracefs nodev {environment.TRACEFS}, or ./scripts/setup)")
    environment.check_headers()
