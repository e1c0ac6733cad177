"""The install-time step that compiles every template into the directory
runner/codegen/template_cache.py reads at run time (scripts/setup runs
`python -m runner.codegen.template_build`, as pip compiles .pyc files). Apart from the
reader so that the renderer, which uses the reader, and this step, which uses the renderer,
do not import each other."""

from __future__ import annotations

from pathlib import Path

from runner.codegen.render import template_environment, template_names
from runner.codegen.template_cache import DIRECTORY, Writer


def build(directory: Path = DIRECTORY) -> int:
    """Compile every template into `directory`; how many were written."""
    directory.mkdir(mode=0o755, exist_ok=True)
    env = template_environment(Writer(directory))
    names = template_names()
    for name in names:
        env.get_template(name)
    return len(names)


if __name__ == "__main__":
    count = build()
    print(f"setup: compiled {count} templates into {DIRECTORY}")
