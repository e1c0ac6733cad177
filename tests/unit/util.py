from __future__ import annotations

from pathlib import Path

from runner import build, loader, schema
from runner.model import Spec

ROOT = Path(__file__).resolve().parents[2]


def spec_from_text(text: str, file: str = "test.yaml", arch: str = "x86_64") -> Spec:
    doc = loader.load_text(text, file)
    schema.check(doc)
    return build.build(doc, arch)
