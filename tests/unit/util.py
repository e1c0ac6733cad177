from __future__ import annotations

from pathlib import Path

from runner.check import build
from runner.model.spec import Spec
from runner.spec import loader, schema

ROOT = Path(__file__).resolve().parents[2]


def spec_from_text(text: str, file: str = "test.yaml", arch: str = "x86_64") -> Spec:
    doc = loader.load_text(text, file)
    schema.check(doc)
    return build.build(doc, arch)
