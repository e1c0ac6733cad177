"""Run options the runtime refuses before anything starts."""

from __future__ import annotations

import pytest

from runner.errors import UsageError
from runner.runtime.run import Options, run_spec

from .util import ROOT, python_says


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_duration_that_never_ends_is_a_usage_error(value):
    with pytest.raises(UsageError, match="--duration must be a finite number") as info:
        run_spec(str(ROOT / "specs" / "hello.yaml"), Options(duration=value))
    assert info.value.exit_code == 2


def test_no_compiler_child_with_one_cpu():
    # A child compiling beside the parent helps only with a second CPU (kernel/compiler.py).
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from runner.kernel import compiler; print(compiler.fork())")
    assert python_says(code) == "None"
