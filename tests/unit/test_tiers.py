"""The development loop, `./scripts/test --fast`: the unit tests not marked slow, with the
arguments after --fast passed on to pytest."""

from __future__ import annotations

import subprocess

import pytest

from .util import ROOT


@pytest.mark.slow  # ruff, mypy and a collection of the unit tier: seconds
@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "python").exists(),
                    reason="./scripts/test runs .venv's python: run ./scripts/setup")
def test_the_fast_tier_is_the_unit_tests_not_marked_slow():
    done = subprocess.run(["bash", "scripts/test", "--fast", "--collect-only", "-q", "-n", "0",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids and all(i.startswith("tests/unit/") for i in ids)
    mutants = "tests/unit/test_fast_schema.py::test_it_agrees_with_the_oracle_on_mutants"
    assert f"{mutants}[specs/hello.yaml-sample]" in ids
    assert f"{mutants}[specs/hello.yaml-rest]" not in ids
    assert "tests/unit/test_packaging.py::test_wheel_carries_resources_and_runs_outside_checkout" \
        not in ids
    assert "tests/unit/test_tiers.py::test_the_fast_tier_is_the_unit_tests_not_marked_slow" \
        not in ids
