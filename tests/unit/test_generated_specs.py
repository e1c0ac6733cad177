"""Generated specs (tests/specgen.py), hostile names and extreme sizes included: `check`
either accepts one, and it renders, or refuses it with located messages; never a traceback.
The kernel tier loads the accepted ones (tests/kernel/test_generated_specs.py)."""

from __future__ import annotations

import pytest
from specgen import generate

from runner.codegen.render import render
from runner.errors import SpecError
from runner.pipeline import check


# The development loop (./scripts/test --fast) checks the first chunk; the full run all four.
@pytest.mark.parametrize("chunk", [0, *(pytest.param(c, marks=pytest.mark.slow)
                                       for c in (1, 2, 3))])
def test_generated_specs_validate_and_render_or_are_refused_with_a_location(tmp_path, chunk):
    accepted = 0
    for index in range(chunk * 50, chunk * 50 + 50):
        text = generate(3, index)
        path = tmp_path / f"spec{index}.yaml"
        path.write_text(text)
        try:
            spec = check(str(path))
        except SpecError as e:
            lines = len(text.splitlines())
            assert all(1 <= d.location.line <= lines + 1 and d.location.col >= 1
                       for d in e.diagnostics), str(e)
            continue
        render(spec)
        accepted += 1
    assert accepted >= 5  # the generator keeps producing specs worth loading
