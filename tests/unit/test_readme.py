"""The README's layout names every folder of the repository, of the package and of the tests,
and every top-level module: a newcomer finds the stage that owns a behaviour from it."""

from __future__ import annotations

import re
import subprocess
from typing import List

import pytest

from .util import ROOT


def layout() -> str:
    """The fenced block of README.md's Layout section."""
    section = (ROOT / "README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```\n", 2)[1]


def tracked() -> List[str]:
    done = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip("not a git checkout: " + done.stderr.strip())
    return done.stdout.splitlines()


def unlisted(block: str, paths: List[str]) -> List[str]:
    """Folders of the repository, of runner/ and of tests/ that no line of the block starts
    with, and modules of runner/ and tests/ (but __init__.py) that it does not name."""
    wanted = set()
    for parts in (p.split("/") for p in paths):
        if len(parts) > 1:
            wanted.add(parts[0] + "/")
        if parts[0] in ("runner", "tests") and len(parts) > 2:
            wanted.add(f"{parts[0]}/{parts[1]}/")
        if parts[0] in ("runner", "tests") and len(parts) == 2 and parts[1].endswith(".py") \
                and parts[1] != "__init__.py":
            wanted.add(parts[1])
    return sorted(n for n in wanted if not re.search(
        "^" + re.escape(n) if n.endswith("/") else r"\b" + re.escape(n) + r"\b", block, re.M))


def test_the_layout_names_every_folder_and_top_level_module():
    assert unlisted(layout(), tracked()) == []


def test_the_check_sees_what_is_left_out():
    paths = ["runner/testing/session.py", "runner/errors.py", "runner/__init__.py", ".ci/run",
             "README.md"]
    assert unlisted("runner/spec/  x\n.ci/run  y\n", paths) == ["errors.py", "runner/testing/"]
    assert unlisted("runner/testing/  x\nrunner/*.py  errors.py: y\n.ci/run\n", paths) == []
